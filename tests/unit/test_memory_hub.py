"""What the in-memory hub adds to the contract: the fake clock, the Hub API, its limits."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from hubbub import OutgoingEvent, Retry
from hubbub.errors import ConfigurationError, HubbubError, PublishError
from hubbub.message import Message, Outbound
from hubbub.producers import Publisher
from hubbub.testing import FakeClock, InMemoryHub
from hubbub.topology import loader
from hubbub.transport.memory import MemoryTransport

DAY = 86400


def test_a_delay_of_days_fires_at_its_second_not_before():
    hub = InMemoryHub("events")
    seen = []
    hub.subscriber("check", topics=["user.inactivity_check"])(
        lambda e: seen.append(hub.clock.time())
    )
    start = hub.clock.time()
    hub.publish("user.inactivity_check", {"user_id": 1}, delay="3d")
    hub.run_until_idle()
    hub.clock.advance(days=3, seconds=-1)
    assert seen == []
    hub.advance(seconds=1)
    assert seen == [start + 3 * DAY]


def test_deliver_at_counts_from_the_fake_clock():
    hub = InMemoryHub("events", clock=FakeClock(0))
    seen = []
    hub.subscriber("s", topics=["t"])(lambda e: seen.append(hub.clock.time()))
    hub.advance(days=10)  # far from the wall clock now
    hub.publish("t", None, deliver_at=hub.clock.now() + timedelta(hours=1))
    hub.publish_many([OutgoingEvent("t", None, deliver_at=hub.clock.now() + timedelta(hours=2))])
    hub.advance(hours=3)
    assert seen == [10 * DAY + 3600, 10 * DAY + 7200]


def test_retries_wait_on_the_clock_and_jitter_is_repeatable():
    def run(seed: int) -> list[float]:
        hub = InMemoryHub("events", clock=FakeClock(0), seed=seed)
        times = []

        @hub.subscriber("s", topics=["t"], retry={"attempts": 4, "backoff": "10s"})
        def fail(event):
            times.append(hub.clock.time())
            raise Retry() if event.attempt == 1 else ValueError("no")

        hub.publish("t", {})
        hub.advance(minutes=5)
        assert [a.outcome for a in hub.attempts()] == ["retry", "retry", "retry", "dead-letter"]
        return times

    first = run(1)
    assert first == run(1)
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert all(5 <= g <= 10 for g in gaps[:1]) and all(g >= 10 for g in gaps[1:])


def test_the_file_wins_over_a_decorator():
    topology = loader.from_mapping(
        {
            "hub": "events",
            "subscribers": {"s": {"handler": f"{__name__}:from_file", "topics": ["a"]}},
        }
    )
    hub = InMemoryHub(topology=topology)
    from_code = []
    hub.subscriber("s", topics=["b"])(from_code.append)  # other topics and handler
    hub.publish("a", 1)
    hub.publish("b", 2)
    hub.run_until_idle()
    assert from_code == []
    assert [e.data for e in hub.handled("s")] == [1]
    assert FROM_FILE[-1].data == 1
    assert [e.topic for e in hub.unrouted()] == ["b"]


FROM_FILE: list = []


def from_file(event):
    FROM_FILE.append(event)


def test_publish_many_and_apublish_go_through_the_same_path():
    hub = InMemoryHub("events")
    got = []
    hub.subscriber("s", topics=["n.*"])(lambda e: got.append(e.data))
    ids = hub.publish_many(OutgoingEvent(f"n.{i}", i) for i in range(3))
    later = asyncio.run(hub.apublish("n.async", "a", delay=5))
    hub.run_until_idle()
    assert got == [0, 1, 2]
    hub.advance(seconds=5)
    assert got == [0, 1, 2, "a"]
    assert [e.id for e in hub.published()] == [*ids, later]


def test_bad_topics_are_refused_as_the_real_publisher_does():
    hub = InMemoryHub("events")
    with pytest.raises(ConfigurationError, match="wildcard"):
        hub.publish("user.*", {})
    with pytest.raises(ConfigurationError, match="either delay= or deliver_at="):
        hub.publish("a", {}, delay=1, deliver_at=hub.clock.now())


def test_handlers_that_trigger_each_other_forever_are_stopped():
    hub = InMemoryHub("events")
    hub.subscriber("echo", topics=["ping"])(lambda e: hub.publish("ping", {}))
    hub.publish("ping", {})
    with pytest.raises(HubbubError, match="trigger each other"):
        hub.run_until_idle()


def test_a_worker_is_refused_with_what_to_do_instead():
    hub = InMemoryHub("events")
    with pytest.raises(HubbubError, match="run_until_idle"):
        hub.worker()


def test_a_plan_tells_what_apply_would_change_in_memory():
    """Plan before apply, without a broker: the same pure plan, against the memory broker."""
    hub = InMemoryHub("events")
    hub.subscriber("mail", topics=["user.#"])(lambda e: None)
    first = hub.plan()
    assert "create queue events.mail" in first.describe()
    assert {c.action for c in first.changes} == {"create"}
    hub.apply()
    assert hub.plan().empty
    hub.subscriber("sales", topics=["order.#"])(lambda e: None)
    added = {(c.action, c.kind, c.name) for c in hub.plan().changes}
    assert ("create", "queue", "events.sales") in added
    assert ("create", "queue", "events.sales.dlq") in added
    assert ("create", "binding", "events -> queue events.sales [order.#]") in added
    assert not any(name.startswith("events.mail") for _, _, name in added)


def test_a_memory_plan_counts_what_a_dropped_subscriber_still_holds():
    memory = MemoryTransport(FakeClock().time)
    both = loader.from_mapping(
        {
            "hub": "events",
            "subscribers": {
                "mail": {"handler": "m:f", "topics": ["user.#"]},
                "sales": {"handler": "m:g", "topics": ["order.#"]},
            },
        }
    )
    memory.apply(both)
    publisher = Publisher("events", transport=memory.publisher())
    publisher.publish("user.x", {})
    sales_only = loader.from_mapping(
        {"hub": "events", "subscribers": {"sales": {"handler": "m:g", "topics": ["order.#"]}}}
    )
    lines = memory.plan(sales_only).describe(verbose=True)
    assert "obsolete queue events.mail: no longer in the topology; kept (1 message" in lines
    assert "remove binding events -> queue events.mail [user.#]" in lines


def test_run_until_says_what_happened_when_it_gives_up():
    hub = InMemoryHub("events")
    hub.subscriber("s", topics=["t"])(lambda e: None)
    hub.publish("t", {}, delay=60)
    with pytest.raises(AssertionError, match="not done within 30 s"):
        hub.run_until(lambda: bool(hub.handled()), within=30)
    hub.run_until(lambda: bool(hub.handled()), within=60)


def test_published_holds_what_the_broker_confirmed_and_not_the_copies():
    hub = InMemoryHub("events", clock=FakeClock(0))

    @hub.subscriber("s", topics=["t"], retry={"attempts": 2, "backoff": "1s"})
    def fail(event):
        raise ValueError("no")

    refused = hub.publisher.send(Outbound("no-such-exchange", "t", Message(b"{}")))
    assert isinstance(refused.exception(), PublishError)
    sent = hub.publish("t", {})
    hub.advance(minutes=1)
    assert [a.outcome for a in hub.attempts()] == ["retry", "dead-letter"]
    assert [e.id for e in hub.published()] == [sent]  # not the retry, not the refused one
    assert [d.event.id for d in hub.dead_lettered("s")] == [sent]
