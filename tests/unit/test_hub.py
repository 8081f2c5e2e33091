"""The Hub's two front doors (file and decorators) build one model; the file wins."""

from __future__ import annotations

import logging

import pytest

from hubbub import Hub
from hubbub.errors import HubbubError, TopologyError
from hubbub.topology import loader
from hubbub.topology.model import RetryPolicy, Topology
from hubbub.transport.memory import MemoryConsumerTransport, MemoryTransport

FILE = f"""
hub: events
subscribers:
  welcome-email:
    handler: {__name__}:send_welcome
    topics: [user.signed_up]
    retry: {{attempts: 2}}
  notify-sales:
    handler: {__name__}:notify_sales
    topics: ["billing.#"]
"""


def send_welcome(event):
    return "welcome"


def notify_sales(event):
    return "sales"


def other_handler(event):
    return "other"


def test_decorators_build_the_same_model_as_a_file():
    hub = Hub("events")

    @hub.subscriber("welcome-email", topics=["user.signed_up"], retry={"attempts": 2})
    def welcome(event):
        return None

    @hub.subscriber(
        "notify-sales", topics=["billing.#"], prefetch=5, retry=RetryPolicy(jitter=False)
    )
    def sales(event):
        return None

    topology = hub.topology
    assert topology.hub == "events"
    welcome_spec, sales_spec = topology.subscribers
    assert (welcome_spec.name, welcome_spec.topics, welcome_spec.retry.attempts) == (
        "welcome-email",
        ("user.signed_up",),
        2,
    )
    assert (sales_spec.prefetch, sales_spec.retry.jitter) == (5, False)
    assert hub.handlers() == {"welcome-email": welcome, "notify-sales": sales}
    assert welcome(None) is None  # the decorator returns the function unchanged


def test_decorator_arguments_are_validated_like_the_file():
    hub = Hub("events")
    with pytest.raises(TopologyError) as info:
        hub.subscriber("bad name", topics=["a.*b"], colour="red")(send_welcome)
    assert info.value.source == "@hub.subscriber('bad name')"
    text = str(info.value)
    assert "subscriber name 'bad name' may only contain" in text
    assert "pattern 'a.*b'" in text
    assert "colour: unknown key" in text


def test_a_subscriber_decorated_twice_is_refused():
    hub = Hub("events")
    hub.subscriber("a", topics=["x"])(send_welcome)
    with pytest.raises(TopologyError, match="'a' is decorated twice"):
        hub.subscriber("a", topics=["y"])(notify_sales)


def test_the_file_wins_over_a_decorator_and_says_so_once(caplog):
    hub = Hub(topology=loader.loads(FILE))

    @hub.subscriber("welcome-email", topics=["user.created"], retry={"attempts": 9})
    def welcome_in_code(event):
        return "code"

    @hub.subscriber("audit", topics=["#"])
    def audit(event):
        return "audit"

    with caplog.at_level(logging.WARNING, logger="hubbub"):
        topology = hub.topology
        assert hub.topology is topology  # built once
        hub.has_subscriber_for("user.signed_up")
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "subscriber 'welcome-email' is defined in the topology file and in code with different "
        "handler, topics, retry; the file's settings win"
    ]
    assert [s.name for s in topology.subscribers] == ["welcome-email", "notify-sales", "audit"]
    welcome = topology.subscriber("welcome-email")
    assert (welcome.topics, welcome.retry.attempts) == (("user.signed_up",), 2)
    handlers = hub.handlers()
    assert handlers["welcome-email"] is send_welcome  # the file's handler, not the decorated one
    assert handlers["notify-sales"] is notify_sales
    assert handlers["audit"] is audit  # only in code: added


def test_a_decorator_that_names_the_files_handler_supplies_the_function(caplog):
    hub = Hub(topology=loader.loads(FILE))
    hub.subscriber("welcome-email", topics=["user.signed_up"], retry={"attempts": 2})(send_welcome)
    with caplog.at_level(logging.WARNING, logger="hubbub"):
        assert hub.handlers()["welcome-email"] is send_welcome
    assert caplog.records == []  # same settings: nothing to warn about


def test_a_hub_needs_a_name_that_agrees_with_its_file(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(FILE)
    assert Hub.from_file(path).name == "events"
    assert Hub(topology=path).name == "events"
    with pytest.raises(ValueError, match="differs from the topology's 'events'"):
        Hub("other", topology=path)
    with pytest.raises(ValueError, match="needs a name or a topology"):
        Hub()


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, object]] = []

    def publish(self, topic, data=None, **options):
        self.published.append((topic, data))
        return "id-1"

    def close(self) -> None:
        self.published.append(("closed", None))


def test_publishing_an_event_no_subscriber_matches_warns(caplog):
    hub = Hub(topology=loader.loads(FILE))
    fake = FakePublisher()
    hub._publisher = fake  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="hubbub"):
        assert hub.publish("billing.paid", {"n": 1}) == "id-1"
        assert caplog.records == []
        assert hub.publish("user.deleted", {"n": 2}) == "id-1"
    assert [r.getMessage() for r in caplog.records] == [
        "no subscriber of hub 'events' matches 'user.deleted': it will be parked in "
        "events.unrouted (warned once per topic)"
    ]
    hub.close()
    assert fake.published == [
        ("billing.paid", {"n": 1}),
        ("user.deleted", {"n": 2}),
        ("closed", None),
    ]


def test_a_hub_without_wiring_does_not_warn(caplog):
    hub = Hub("events")
    hub._publisher = FakePublisher()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="hubbub"):
        hub.publish("anything.at.all")
    assert not hub.knows_subscribers
    assert caplog.records == []


def test_the_publisher_is_created_once_and_shared_without_connecting():
    hub = Hub("events", url="amqp://u:p@h/%2F")
    first = hub.publisher
    assert hub.publisher is first
    assert first.urls == ["amqp://u:p@h/%2F"]


class _ElsewhereTransport(MemoryTransport):
    """An in-memory broker posing as a remote one (for what a Hub does on any transport)."""

    in_memory = False


def test_a_hub_publishes_applies_and_consumes_through_its_transport():
    transport = _ElsewhereTransport()
    hub = Hub("events", transport=transport)
    hub.subscriber("welcome-email", topics=["user.signed_up"])(send_welcome)
    assert hub.apply() is None  # the in-memory broker makes no plan
    sent = hub.publish("user.signed_up", {"email": "a@example.com"})
    (queued,) = transport.broker.messages(hub.topology.names.queue("welcome-email"))
    assert queued.message.message_id == sent
    worker = hub.worker(name="hubbub test")
    assert isinstance(worker.transport, MemoryConsumerTransport)
    assert worker.transport.broker is transport.broker


def test_a_hub_in_memory_has_no_worker_of_its_own():
    hub = Hub("events", transport=MemoryTransport())
    with pytest.raises(HubbubError, match="InMemoryHub"):
        hub.worker()


def test_a_topic_is_matched_against_the_subscribers_once_per_wiring(monkeypatch, caplog):
    hub = Hub(topology=loader.loads(FILE))
    hub._publisher = FakePublisher()  # type: ignore[assignment]
    calls: list[str] = []
    matching = Topology.matching

    def counted(self, topic):
        calls.append(topic)
        return matching(self, topic)

    monkeypatch.setattr(Topology, "matching", counted)
    for _ in range(3):
        hub.publish("billing.paid", {})
    assert calls == ["billing.paid"]

    @hub.subscriber("audit", topics=["user.#"])
    def audit(event):
        return None

    with caplog.at_level(logging.WARNING, logger="hubbub"):
        hub.publish("billing.paid", {})  # subscribers are only ever added: still matched
        hub.publish("user.deleted", {})  # matched by the new subscriber: no warning
        hub.publish("user.deleted", {})
    assert calls == ["billing.paid", "user.deleted"]
    assert caplog.records == []
