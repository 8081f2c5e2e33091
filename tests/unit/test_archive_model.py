"""The archive in the topology (pure): the file's options, the stream, the plan's words."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hubbub.admin.archive import (
    MARK,
    OFFSET,
    REPLAY,
    ArchivedEvent,
    ReplayPlan,
    Window,
    archived,
    replay_headers,
)
from hubbub.errors import ConfigurationError, TopologyError
from hubbub.message import Message
from hubbub.topology import loader
from hubbub.topology.explain import explain
from hubbub.topology.layout import Binding, Queue, layout, max_age
from hubbub.topology.plan import Observed, ObservedQueue, plan
from hubbub.topology.sizes import format_size, parse_size

SUBSCRIBERS = {"a": {"handler": "log", "topics": ["order.#"]}}


def topology(**more):
    return loader.from_mapping({"hub": "events", "subscribers": SUBSCRIBERS, **more})


@pytest.mark.parametrize(
    ("text", "size"),
    [("50GB", 50 * 10**9), ("500 MB", 5 * 10**8), ("1GiB", 2**30), ("1.5kb", 1500), (42, 42)],
)
def test_sizes_read_as_people_write_them(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "50 parsecs", "GB", "-1GB", True])
def test_a_size_that_is_none_says_how_to_write_one(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_sizes_print_in_the_largest_unit():
    assert format_size(50 * 10**9) == "50 GB" and format_size(1500) == "1.5 kB"


@pytest.mark.parametrize(
    ("seconds", "text"), [(30 * 86400, "30D"), (7200, "2h"), (90, "90s"), (120, "2m"), (0.2, "1s")]
)
def test_retention_is_written_in_the_units_x_max_age_takes(seconds, text):
    assert max_age(seconds) == text


def test_an_archive_is_a_stream_bound_to_every_event_at_once_and_when_due():
    built = layout(topology(archive={"retention": "30d", "max_size": "50GB"}, replicas=3))
    names = built.names
    [stream] = [q for q in built.queues if q.name == names.archive]
    assert stream == Queue(
        "hubbub.v1.events.archive",
        (
            ("x-initial-cluster-size", 3),
            ("x-max-age", "30D"),
            ("x-max-length-bytes", 50 * 10**9),
            ("x-queue-type", "stream"),
        ),
    )
    into = [b for b in built.bindings if b.destination == names.archive]
    assert into[0] == Binding("events", names.archive, "#")
    # Delayed events when due (mark e.), never retries or replays (mark q.).
    assert into[1].source == names.delivery and into[1].routing_key.endswith(".e.#")
    assert len(into) == 2


def test_no_archive_no_stream():
    assert not [q for q in layout(topology()).queues if "archive" in q.name]


def test_an_archive_without_a_bound_is_refused():
    with pytest.raises(TopologyError, match="needs a retention"):
        topology(archive={})


def test_a_backfill_without_an_archive_says_how_to_add_one():
    subs = {"a": {**SUBSCRIBERS["a"], "backfill": "7d"}}
    with pytest.raises(TopologyError, match=r"no archive to backfill from.*archive: \{retention"):
        loader.from_mapping({"hub": "events", "subscribers": subs})


def test_the_archive_and_replay_queues_are_the_hubs_own():
    names = topology().names
    assert names.owns("hubbub.v1.events.archive", "queue")
    assert names.owns("hubbub.v1.events.replay.0123456789ab", "queue")
    assert not names.owns("hubbub.v1.events.staging.archive", "queue")
    assert names.parse_replay_progress("hubbub.v1.events.replay.0123456789ab") == "0123456789ab"
    assert names.parse_replay_progress("hubbub.v1.events.replay.x") is None


def test_a_changed_retention_is_a_conflict_that_keeps_the_history():
    wanted = layout(topology(archive={"retention": "60d"}))
    have = Observed(
        queues={
            "hubbub.v1.events.archive": ObservedQueue(
                {"x-queue-type": "stream", "x-max-age": "30D"}
            )
        }
    )
    [conflict] = [c for c in plan(wanted, have).changes if c.action == "conflict"]
    assert "x-max-age is '30D' on the broker, the topology needs '60D'" in conflict.detail
    assert "deleting the archive deletes the events" in conflict.detail
    assert "rabbitmqctl set_policy" in conflict.detail


def test_plan_says_what_starting_and_stopping_the_archive_means():
    without, with_ = topology(), topology(archive={"retention": "30d", "max_size": "50GB"})
    started = explain(without, with_, Observed(), visibility=lambda _h: "shown")
    assert started == [
        "the hub will keep a copy of every event in its archive (for 30d, at most 50 GB); "
        "an event no subscriber matches is kept there instead of parked as unrouted"
    ]
    held = Observed(queues={"hubbub.v1.events.archive": ObservedQueue({}, messages=7)})
    [stopped] = explain(with_, without, held, visibility=lambda _h: "shown")
    assert stopped.startswith("the hub stops archiving events; its archive is kept with 7 events")


def test_plan_says_a_new_subscriber_starts_with_history():
    subs = {**SUBSCRIBERS, "late": {"handler": "log", "topics": ["order.#"], "backfill": "7d"}}
    new = loader.from_mapping(
        {"hub": "events", "archive": {"retention": "30d"}, "subscribers": subs}
    )
    old = topology(archive={"retention": "30d"})
    [added] = explain(old, new, Observed(), visibility=lambda _h: "shown")
    assert "late will receive order.#, starting with the archive's events of the last 7d" in added


def message(**headers) -> Message:
    return Message(b'{"n":1}', content_type="application/json", headers=headers, message_id="e1",
                   timestamp=1_700_000_000, type="order.paid")  # fmt: skip


def test_an_archived_event_keeps_its_topics_and_time():
    event = archived(
        7,
        "order.paid",
        message(**{"hubbub-topics": "order.paid crm.lead", "x-stream-offset": 7, "tenant": "t"}),
    )
    assert (event.offset, event.id, event.topic, event.topics) == (
        7,
        "e1",
        "order.paid",
        ("order.paid", "crm.lead"),
    )
    assert event.time == datetime.fromtimestamp(1_700_000_000, timezone.utc)
    assert event.headers == {"tenant": "t"} and event.data == {"n": 1}


def test_a_delayed_events_time_is_when_it_was_due():
    event = archived(
        0,
        "0.0.e.order.paid",
        message(**{"hubbub-topic": "order.paid", "hubbub-due-ms": 1_700_000_005_000}),
    )
    assert event.topic == "order.paid"
    assert event.time == datetime.fromtimestamp(1_700_000_005, timezone.utc)


def test_a_window_matches_by_time_topic_and_id():
    at = datetime.fromtimestamp(1_700_000_000, timezone.utc)
    event = archived(0, "order.paid", message())
    assert Window().matches(event)
    assert Window(since=at, until=at + timedelta(seconds=1)).matches(event)
    assert not Window(until=at).matches(event)  # until is exclusive
    assert not Window(since=at + timedelta(seconds=1)).matches(event)
    assert Window(topics=("user.#", "order.*")).matches(event)
    assert not Window(topics=("user.#",)).matches(event)
    assert not Window(ids=frozenset({"other"})).matches(event)


def test_a_window_refuses_nonsense():
    at = datetime.now(timezone.utc)
    with pytest.raises(ConfigurationError, match="ends"):
        Window(since=at, until=at - timedelta(hours=1))
    with pytest.raises(ConfigurationError, match="--topic"):
        Window(topics=("order..paid",))


def test_a_replay_plan_survives_its_round_trip_through_the_queue_argument():
    plan_ = ReplayPlan(
        "0123456789ab",
        "a",
        Window(datetime(2026, 1, 1, tzinfo=timezone.utc), None, ("order.#",), frozenset({"x"})),
        "mark12345678",
        frozenset({"s1", "s2"}),
        25.0,
    )
    assert ReplayPlan.from_json(plan_.to_json()) == plan_


def test_a_replayed_copy_is_aimed_marked_and_copied_to_the_progress_queue():
    event = ArchivedEvent(
        9, "e1", "order.paid", ("order.paid", "crm.lead"), None,
        message(CC=["crm.lead"], **{"hubbub-topics": "order.paid crm.lead", "x-stream-offset": 9}),
    )  # fmt: skip
    headers = replay_headers(event, "0123456789ab", "progress-q")
    assert headers == {
        "hubbub-topics": "order.paid crm.lead",
        "hubbub-topic": "order.paid",
        REPLAY: "0123456789ab",
        OFFSET: 9,
        "BCC": ["progress-q"],
    }
    assert MARK not in headers


def test_a_hub_built_from_a_file_keeps_its_archive():
    """Else ``hub.apply()`` would not declare the archive, and would unbind it."""
    from hubbub.hub import Hub

    file = topology(archive={"retention": "30d"})
    hub = Hub(topology=file, url="amqp://127.0.0.1:1/")
    assert hub.topology.archive == file.archive


def test_the_in_memory_hub_archives_every_event_and_parks_none():
    from hubbub.testing import InMemoryHub

    hub = InMemoryHub(topology=topology(archive={"retention": "1d"}))
    hub.publish("order.paid", {"n": 1})
    hub.publish("audit.login", {"n": 2})  # no subscriber: archived, not parked
    hub.run_until_idle()
    names = hub.topology.names
    assert [q.routing_key for q in hub.broker.messages(names.archive)] == [
        "order.paid",
        "audit.login",
    ]
    assert hub.broker.messages(names.unrouted) == []
    hub.close()
