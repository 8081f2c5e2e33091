"""The inbox middleware with its memory store, on the in-memory hub (no broker, no database)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
import yaml

from hubbub import Middleware
from hubbub.inbox import Inbox, InboxBusyError, InboxError, MemoryStore, connection
from hubbub.testing import InMemoryHub


def _hub(store: MemoryStore, **options: Any) -> tuple[InMemoryHub, Inbox]:
    inbox = Inbox(store)
    return InMemoryHub("shop", middleware=[inbox], **options), inbox


def test_an_event_id_seen_again_is_skipped_and_acked_without_running_the_handler(caplog):
    store = MemoryStore()
    hub, inbox = _hub(store)
    seen: list[Any] = []
    hub.subscriber("s", topics=["order.paid"])(lambda event: seen.append(event.data))
    hub.publish("order.paid", {"n": 1}, message_id="e-1")
    hub.publish("order.paid", {"n": 2}, message_id="e-1")  # the same event, again
    hub.publish("order.paid", {"n": 3}, message_id="e-2")
    with caplog.at_level(logging.INFO, logger="hubbub.inbox"):
        hub.run_until_idle()
    assert seen == [{"n": 1}, {"n": 3}]
    assert [a.outcome for a in hub.attempts("s")] == ["ack", "ack", "ack"]
    assert [e.data for e in hub.handled("s")] == [{"n": 1}, {"n": 3}]  # what ran
    assert inbox.skipped == 1
    assert store.handled("s") == {"e-1", "e-2"}
    assert "event e-1 (order.paid) already handled by s: skipped" in caplog.text


def test_each_subscriber_has_its_own_record_of_what_it_handled():
    store = MemoryStore()
    hub, _ = _hub(store)
    runs: list[str] = []
    hub.subscriber("a", topics=["t"])(lambda event: runs.append("a"))
    hub.subscriber("b", topics=["t"])(lambda event: runs.append("b"))
    hub.publish("t", {}, message_id="e-1")
    hub.run_until_idle()
    assert sorted(runs) == ["a", "b"]
    assert store.handled("a") == store.handled("b") == {"e-1"}


def test_a_failed_attempt_records_nothing_so_the_retry_runs_and_then_counts():
    store = MemoryStore()
    hub, inbox = _hub(store)
    calls: list[int] = []

    @hub.subscriber("s", topics=["t"], retry={"attempts": 3, "backoff": "1s", "jitter": False})
    def flaky(event):
        calls.append(event.attempt)
        if event.attempt == 1:
            raise ConnectionError("down")

    hub.publish("t", {}, message_id="e-1")
    hub.advance(minutes=1)
    assert calls == [1, 2]
    assert [a.outcome for a in hub.attempts("s")] == ["retry", "ack"]
    assert store.handled("s") == {"e-1"} and inbox.skipped == 0


def test_a_dead_lettered_event_replayed_runs_once_it_succeeds_and_not_twice():
    store = MemoryStore()
    hub, inbox = _hub(store)
    broken = [True]

    @hub.subscriber("s", topics=["t"], retry={"attempts": 1})
    def handler(event):
        if broken[0]:
            raise ValueError("bug")

    hub.publish("t", {}, message_id="e-1")
    hub.run_until_idle()
    assert len(hub.dead_lettered("s")) == 1 and store.handled("s") == set()
    broken[0] = False
    hub.replay("s")
    hub.run_until_idle()
    assert store.handled("s") == {"e-1"}
    hub.publish("t", {}, message_id="e-1")  # and delivered once more: skipped
    hub.run_until_idle()
    assert inbox.skipped == 1


def test_a_second_attempt_of_the_same_event_waits_for_the_first_then_skips():
    store = MemoryStore(busy_timeout=5)
    inbox = Inbox(store)
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def slow(event):
        runs.append(threading.current_thread().name)
        started.set()
        release.wait(5)

    wrapped = _wrapped(inbox, slow)
    first = threading.Thread(target=wrapped, args=(_event("e-1"),), name="first")
    first.start()
    assert started.wait(5)
    results: list[Any] = []
    second = threading.Thread(target=lambda: results.append(wrapped(_event("e-1"))))
    second.start()
    time.sleep(0.2)
    assert second.is_alive(), "the second attempt ran beside the first"
    release.set()
    first.join(5)
    second.join(5)
    assert runs == ["first"] and inbox.skipped == 1


def test_a_second_attempt_runs_if_the_first_failed_meanwhile():
    store = MemoryStore(busy_timeout=5)
    inbox = Inbox(store)
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def handler(event):
        runs.append(len(runs))
        if len(runs) == 1:
            started.set()
            release.wait(5)
            raise ValueError("first attempt fails")

    wrapped = _wrapped(inbox, handler)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            wrapped(_event("e-1"))
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(5)
    second = threading.Thread(target=wrapped, args=(_event("e-1"),))
    second.start()
    release.set()
    thread.join(5)
    second.join(5)
    assert runs == [0, 1] and len(errors) == 1 and store.handled("s") == {"e-1"}


def test_an_attempt_that_waits_past_busy_timeout_is_retried_later():
    store = MemoryStore(busy_timeout=0.2)
    inbox = Inbox(store)
    with store.claim("s", "e-1") as new:  # a handler written off, still running
        assert new
        with pytest.raises(InboxBusyError) as caught:
            _wrapped(inbox, lambda event: None)(_event("e-1"))
    assert caught.value.after == pytest.approx(0.2)
    assert "retried later" in str(caught.value)


def test_a_busy_entry_makes_the_hub_retry_the_event_after_the_busy_timeout():
    store = MemoryStore(busy_timeout=0.05)
    hub, _ = _hub(store)
    runs: list[int] = []
    hub.subscriber("s", topics=["t"], retry={"attempts": 5})(lambda event: runs.append(1))
    hub.publish("t", {}, message_id="e-1")
    with pytest.raises(ValueError), store.claim("s", "e-1"):  # another attempt, still running
        hub.run_until_idle()
        assert [a.outcome for a in hub.attempts("s")] == ["retry"]
        assert runs == []
        raise ValueError("the holder fails: its claim is released unrecorded")
    hub.advance(minutes=1)
    assert runs == [1]
    assert [a.outcome for a in hub.attempts("s")] == ["retry", "ack"]


def test_an_async_handler_is_deduplicated_alike():
    store = MemoryStore()
    hub, inbox = _hub(store)
    seen: list[int] = []

    @hub.subscriber("s", topics=["t"])
    async def handler(event):
        await asyncio.sleep(0)
        seen.append(event.data["n"])

    for n in (1, 2):
        hub.publish("t", {"n": n}, message_id="e-1")
    hub.run_until_idle()
    assert seen == [1] and inbox.skipped == 1 and store.handled("s") == {"e-1"}


def test_an_async_handler_that_raises_records_nothing():
    store = MemoryStore()
    hub, _ = _hub(store)

    @hub.subscriber("s", topics=["t"], retry={"attempts": 1})
    async def handler(event):
        raise ValueError("no")

    hub.publish("t", {}, message_id="e-1")
    hub.run_until_idle()
    assert store.handled("s") == set() and len(hub.dead_lettered("s")) == 1


def test_connection_outside_a_database_inbox_says_where_it_works():
    with pytest.raises(InboxError, match="inside a handler that an Inbox with a PostgresStore"):
        connection()
    store = MemoryStore()
    hub, _ = _hub(store)
    raised: list[BaseException] = []

    def handler(event):
        try:
            connection()
        except InboxError as exc:
            raised.append(exc)

    hub.subscriber("s", topics=["t"])(handler)
    hub.publish("t", {})
    hub.run_until_idle()
    assert len(raised) == 1  # the memory store has no database to share


def test_an_outer_middleware_sees_a_skip_as_a_return():
    store = MemoryStore()
    outcomes: list[str] = []

    class Outer(Middleware):
        def consume(self, event, call_next):
            result = call_next(event)
            outcomes.append(f"{event.id}:{result}")
            return result

    hub = InMemoryHub("shop", middleware=[Outer(), Inbox(store)])
    hub.subscriber("s", topics=["t"])(lambda event: "ran")
    hub.publish("t", {}, message_id="e-1")
    hub.publish("t", {}, message_id="e-1")
    hub.run_until_idle()
    assert outcomes == ["e-1:ran", "e-1:None"]


def test_a_subscriber_marked_idempotent_uses_the_hubs_inbox_the_others_do_not():
    store = MemoryStore()
    hub = InMemoryHub("shop", inbox=store)
    runs: list[str] = []
    hub.subscriber("once", topics=["t"], idempotent=True)(lambda event: runs.append("once"))
    hub.subscriber("every", topics=["t"])(lambda event: runs.append("every"))
    for _ in range(2):
        hub.publish("t", {}, message_id="e-1")
    hub.run_until_idle()
    assert sorted(runs) == ["every", "every", "once"]
    assert store.handled("once") == {"e-1"} and store.handled("every") == set()


def test_the_in_memory_hub_gives_idempotent_subscribers_a_memory_inbox_of_its_own(tmp_path, caplog):
    spec = {
        "hub": "shop",
        "subscribers": {
            "s": {"handler": "hubbub.actions:log", "topics": ["t"], "idempotent": True}
        },
    }
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(spec))
    hub = InMemoryHub.from_file(file)
    for _ in range(3):
        hub.publish("t", {}, message_id="e-1")
    with caplog.at_level(logging.INFO, logger="hubbub.inbox"):
        hub.run_until_idle()
    assert isinstance(hub.inbox, MemoryStore) and hub.inbox.handled("s") == {"e-1"}
    assert caplog.text.count("event e-1 (t) already handled by s: skipped") == 2


def test_an_inbox_among_the_middlewares_is_not_doubled_for_an_idempotent_subscriber():
    """Two claims of one event in one attempt would wait on each other until busy_timeout."""
    store = MemoryStore(busy_timeout=0.5)
    hub = InMemoryHub("shop", middleware=[Inbox(store)], inbox=MemoryStore())
    runs: list[str] = []
    hub.subscriber("s", topics=["t"], idempotent=True)(lambda event: runs.append(event.id))
    hub.publish("t", {}, message_id="e-1")
    hub.run_until_idle()
    assert runs == ["e-1"] and [a.outcome for a in hub.attempts("s")] == ["ack"]


def test_a_worker_for_an_idempotent_subscriber_without_an_inbox_is_refused_in_one_line():
    from hubbub.consumers.worker import Worker
    from hubbub.errors import ConfigurationError
    from hubbub.topology import loader
    from hubbub.transport.memory import MemoryTransport

    topology = loader.from_mapping(
        {
            "hub": "shop",
            "subscribers": {"s": {"handler": "m:f", "topics": ["t"], "idempotent": True}},
        }
    )
    memory = MemoryTransport(time.time)
    with pytest.raises(ConfigurationError) as caught:
        Worker(
            topology,
            {"s": lambda event: None},
            transport=memory.consumer(name="t"),
            publisher=_publisher(memory),
            inline=True,
        )
    assert str(caught.value).startswith(
        "subscriber s is idempotent, so its consumer needs an inbox to record the events"
    )


def test_a_timeout_not_longer_than_the_busy_timeout_is_warned_of(caplog):
    hub = InMemoryHub("shop", inbox=MemoryStore(busy_timeout=10))
    hub.subscriber("quick", topics=["t"], idempotent=True, timeout="5s")(lambda event: None)
    hub.subscriber("slow", topics=["t"], idempotent=True, timeout="30s")(lambda event: None)
    hub.publish("t", {})
    with caplog.at_level(logging.WARNING, logger="hubbub.consumers"):
        hub.run_until_idle()
    warned = [r.getMessage() for r in caplog.records if "busy_timeout" in r.getMessage()]
    assert warned == [
        "subscriber quick: its timeout (5s) is not longer than its inbox's busy_timeout (10s): "
        "an attempt waiting for another attempt of the same event may be written off first; "
        "give the store a shorter busy_timeout"
    ]


def test_each_skip_is_told_to_on_skip_with_the_subscriber_and_topic():
    told: list[tuple[str, str]] = []
    hub = InMemoryHub("shop", middleware=[Inbox(MemoryStore(), on_skip=lambda *a: told.append(a))])
    hub.subscriber("s", topics=["order.#"])(lambda event: None)
    for _ in range(3):
        hub.publish("order.paid", {}, message_id="e-1")
    hub.run_until_idle()
    assert told == [("s", "order.paid"), ("s", "order.paid")]


def _publisher(memory: Any) -> Any:
    from hubbub.producers.publisher import Publisher

    return Publisher("shop", transport=memory.publisher(name="t"), clock=memory.time)


def _event(event_id: str) -> Any:
    from hubbub.envelope import Event

    return Event(topic="t", data={}, id=event_id, subscriber="s")


def _wrapped(inbox: Inbox, handler: Any) -> Any:
    from hubbub.middleware import consuming

    return consuming([inbox], handler)
