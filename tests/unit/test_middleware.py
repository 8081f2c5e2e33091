"""Middleware on both paths: order, threads, retries, dead-letters, DontRetry, compile once."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import kombu
import pytest
from test_codecs import Upper

import hubbub
from hubbub import Codecs, DontRetry, Middleware, OutgoingEvent, Retry
from hubbub.consumers.retry import NOT_RETRYABLE, decide
from hubbub.message import Outbound
from hubbub.middleware import consuming, publishing
from hubbub.producers.kombu import KombuPublisher
from hubbub.testing import InMemoryHub
from hubbub.topology.model import RetryPolicy

DOC = Path(__file__).resolve().parents[2] / "docs" / "middleware.md"


class Log(Middleware):
    """Notes each hook's entry and exit, with the thread it ran on."""

    def __init__(self, name: str, log: list[Any]) -> None:
        self.name = name
        self.log = log

    def consume(self, event, call_next):
        self.log.append((self.name, "in", event.attempt, threading.get_ident()))
        try:
            return call_next(event)
        finally:
            self.log.append((self.name, "out", event.attempt, threading.get_ident()))

    def publish(self, message, call_next):
        self.log.append((self.name, "publish", message.message.type))
        headers = {**(message.message.headers or {}), f"x-{self.name}": "seen"}
        return call_next(
            dataclasses.replace(message, message=message.message.with_headers(headers))
        )


def _hub(log: list[Any], **options: Any) -> InMemoryHub:
    return InMemoryHub("shop", middleware=[Log("a", log), Log("b", log)], **options)


def test_consume_hooks_run_in_order_around_the_handler_on_its_thread():
    log: list[Any] = []
    hub = _hub(log)

    @hub.subscriber("s", topics=["t"])
    def handler(event):
        log.append(("handler", "run", event.attempt, threading.get_ident()))

    hub.publish("t", {})
    log.clear()
    hub.run_until_idle()
    assert [entry[:2] for entry in log] == [
        ("a", "in"),
        ("b", "in"),
        ("handler", "run"),
        ("b", "out"),
        ("a", "out"),
    ]
    assert {entry[3] for entry in log} == {threading.get_ident()}


def test_consume_hooks_run_on_every_retry_and_on_the_attempt_that_dead_letters():
    log: list[Any] = []
    hub = _hub(log)

    @hub.subscriber("s", topics=["t"], retry={"attempts": 3, "backoff": "1s", "jitter": False})
    def handler(event):
        raise ValueError("down")

    hub.publish("t", {})
    log.clear()
    hub.advance(minutes=1)
    assert [a.outcome for a in hub.attempts()] == ["retry", "retry", "dead-letter"]
    assert [(e[0], e[1], e[2]) for e in log if e[0] == "a"] == [
        ("a", "in", 1),
        ("a", "out", 1),
        ("a", "in", 2),
        ("a", "out", 2),
        ("a", "in", 3),
        ("a", "out", 3),
    ]
    (dead,) = hub.dead_lettered("s")
    assert dead.record["exception"] == "ValueError"


def test_dont_retry_from_a_middleware_dead_letters_at_once_naming_the_cause():
    class Permanent(Middleware):
        def consume(self, event, call_next):
            try:
                return call_next(event)
            except PermissionError as exc:
                raise DontRetry("no access") from exc

    hub = InMemoryHub("shop", middleware=[Permanent()])
    hub.subscriber("s", topics=["t"], retry={"attempts": 5})(_raise(PermissionError("denied")))
    hub.publish("t", {})
    hub.run_until_idle()
    (attempt,) = hub.attempts("s")
    assert attempt.outcome == "dead-letter" and attempt.error == "PermissionError"
    (dead,) = hub.dead_lettered("s")
    assert dead.record["reason"] == NOT_RETRYABLE
    assert dead.record["exception"] == "PermissionError"
    assert dead.record["message"] == "denied"


def test_dont_retry_is_a_decision_beating_attempts_left_and_retry():
    policy = RetryPolicy(attempts=5)
    assert decide(policy, DontRetry("no"), 1).action == "dead-letter"
    assert decide(policy, DontRetry("no"), 1).reason == NOT_RETRYABLE
    assert decide(policy, Retry(), 1).action == "retry"


def test_a_handler_raising_dont_retry_without_a_cause_is_recorded_as_itself():
    hub = InMemoryHub("shop")
    hub.subscriber("s", topics=["t"])(_raise(DontRetry("bad input")))
    hub.publish("t", {})
    hub.run_until_idle()
    (dead,) = hub.dead_lettered("s")
    assert dead.record["exception"] == "hubbub.errors.DontRetry"


def test_publish_hooks_run_in_order_for_publish_publish_many_and_apublish():
    log: list[Any] = []
    hub = _hub(log)
    hub.subscriber("s", topics=["t.#"])(lambda event: None)

    hub.publish("t.one", {})
    hub.publish_many([OutgoingEvent("t.two", {}), OutgoingEvent("t.three", {})])
    asyncio.run(hub.apublish("t.four", {}))
    asyncio.run(hub.apublish_many([OutgoingEvent("t.five", {})]))

    topics = ["t.one", "t.two", "t.three", "t.four", "t.five"]
    assert log == [(name, "publish", t) for t in topics for name in ("a", "b")]
    for event in hub.published():
        assert event.headers == {"x-a": "seen", "x-b": "seen"}
    assert [e.topic for e in hub.published()] == topics


def test_events_handlers_publish_pass_the_publish_hooks_and_keep_their_causation():
    log: list[Any] = []
    hub = _hub(log)

    @hub.subscriber("s", topics=["order.placed"])
    def confirm(event):
        hubbub.publish("order.confirmed", {"order": event.data["order"]})

    placed = hub.publish("order.placed", {"order": 1})
    hub.run_until_idle()
    (confirmed,) = hub.published("order.confirmed")
    assert confirmed.headers == {"x-a": "seen", "x-b": "seen"}
    assert confirmed.causation_id == placed
    assert ("a", "publish", "order.confirmed") in log


def test_a_publish_hook_that_raises_refuses_the_publish():
    class Refuse(Middleware):
        def publish(self, message, call_next):
            raise PermissionError("not this one")

    hub = InMemoryHub("shop", middleware=[Refuse()])
    with pytest.raises(PermissionError):
        hub.publish("t", {})
    assert hub.published() == []


def test_a_subscribers_own_middleware_runs_inside_the_hubs():
    log: list[Any] = []
    hub = InMemoryHub("shop", middleware=[Log("hub", log)])

    @hub.subscriber("s", topics=["t"], middleware=[Log("own", log)])
    def handler(event):
        log.append(("handler", "run", 1, 0))

    hub.subscriber("other", topics=["t"])(lambda event: None)
    hub.publish("t", {})
    log.clear()
    hub.run_until_idle()
    names = [entry[:2] for entry in log]
    assert names == [
        ("hub", "in"),
        ("own", "in"),
        ("handler", "run"),
        ("own", "out"),
        ("hub", "out"),
        ("hub", "in"),  # the other subscriber: the hub's alone
        ("hub", "out"),
    ]


def test_any_object_with_the_hooks_is_a_middleware():
    seen = []

    class Plain:
        def consume(self, event, call_next):
            seen.append(event.topic)
            return call_next(event)

    hub = InMemoryHub("shop", middleware=[Plain()])
    hub.subscriber("s", topics=["t"])(lambda event: None)
    hub.publish("t", {})
    hub.run_until_idle()
    assert seen == ["t"]


def test_a_middleware_class_or_an_object_without_hooks_is_refused_in_one_line():
    with pytest.raises(TypeError, match=r"is a class: pass an instance \(Middleware\(\.\.\.\)\)"):
        hubbub.Hub("shop", middleware=[Middleware])
    with pytest.raises(TypeError, match="is not a middleware"):
        hubbub.Hub("shop", middleware=[object()])


def test_chains_are_compiled_once_and_cost_nothing_without_hooks():
    def handler(event):
        return "done"

    assert consuming([], handler) is handler
    assert consuming([Middleware()], handler) is handler  # pass-through hooks are skipped
    assert publishing([Middleware()]) is None

    calls = []

    class Count(Middleware):
        def consume(self, event, call_next):
            calls.append(event)
            return call_next(event)

    chain = consuming([Count(), Count()], handler)
    assert chain is not handler and chain.__wrapped__ is handler  # signature checks see it
    assert chain("e") == "done" and calls == ["e", "e"]


class ALog(Log):
    """Log with an aconsume hook too: it wraps async def handlers, in their task."""

    async def aconsume(self, event, call_next):
        self.log.append((self.name, "in", event.attempt, asyncio.current_task() is not None))
        try:
            return await call_next(event)
        finally:
            self.log.append((self.name, "out", event.attempt, True))


def test_aconsume_hooks_run_in_order_around_an_async_handler_in_its_task():
    log: list[Any] = []
    hub = InMemoryHub("shop", middleware=[ALog("a", log), ALog("b", log)])

    @hub.subscriber("s", topics=["t"], retry={"attempts": 2, "jitter": 0})
    async def handler(event):
        log.append(("handler", "run", event.attempt, asyncio.current_task() is not None))
        raise ValueError("again")

    hub.publish("t", {})
    log.clear()
    hub.run_until(lambda: len(hub.attempts("s")) == 2, within=60)
    assert [entry[:3] for entry in log if entry[1] != "publish"] == [
        ("a", "in", 1),
        ("b", "in", 1),
        ("handler", "run", 1),
        ("b", "out", 1),
        ("a", "out", 1),
        ("a", "in", 2),
        ("b", "in", 2),
        ("handler", "run", 2),
        ("b", "out", 2),
        ("a", "out", 2),
    ]
    assert all(entry[3] for entry in log if entry[1] == "in" or entry[0] == "handler")
    assert [a.outcome for a in hub.attempts("s")] == ["retry", "dead-letter"]


def test_a_middleware_with_only_a_consume_hook_is_refused_for_an_async_handler_in_one_line():
    async def handler(event):
        return None

    class Count(Middleware):
        def consume(self, event, call_next):
            return call_next(event)

    with pytest.raises(TypeError) as info:
        consuming([Count()], handler)
    assert str(info.value).startswith("middleware Count has a consume hook but no aconsume")
    assert "'async def aconsume(self, event, call_next)'" in str(info.value)
    assert consuming([Count()], lambda event: None) is not None  # plain handlers: fine


def test_an_async_chain_stays_an_async_def_and_a_hookless_one_is_the_handler():
    async def handler(event):
        return None

    assert consuming([Middleware()], handler) is handler
    assert asyncio.iscoroutinefunction(consuming([ALog("a", [])], handler))


def test_the_documented_example_runs_in_order_with_a_db_session(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert example is not None
    namespace: dict[str, Any] = {}
    exec(compile(example.group(1), str(DOC), "exec"), namespace)
    with sqlite3.connect("shop.db") as setup:
        setup.execute("create table receipts (order_id integer)")
    timing = namespace["timing"]
    hub = InMemoryHub("shop", middleware=namespace["hub"].middleware)
    hub.subscriber("receipts", topics=["order.placed"])(namespace["send_receipt"])

    def fails(event):
        namespace["send_receipt"](event)
        raise ValueError("after the insert")

    hub.subscriber("flaky", topics=["order.placed"], retry={"attempts": 1})(fails)
    hub.publish("order.placed", {"order": 42})
    hub.run_until_idle()

    with sqlite3.connect("shop.db") as check:
        rows = check.execute("select order_id from receipts").fetchall()
    assert rows == [(42,)]  # the failing handler's insert was rolled back
    assert sorted(timing.seconds) == ["flaky", "receipts"]
    assert timing.published == ["order.placed"]
    assert [a.outcome for a in hub.attempts()] == ["ack", "dead-letter"]


def _raise(error: BaseException) -> Any:
    def handler(event):
        raise error

    return handler


def test_the_kombu_publisher_runs_the_publish_hooks_and_the_codecs(monkeypatch):
    log: list[Any] = []
    connection = kombu.Connection(
        "amqp://guest:guest@127.0.0.1:5672//", transport_options={"confirm_publish": True}
    )
    publisher = KombuPublisher(
        "shop", connection, middleware=[Log("a", log), Log("b", log)], codecs=Codecs(Upper())
    )
    sent: list[Outbound] = []
    monkeypatch.setattr(publisher, "_send", lambda _connection, message: sent.append(message))
    publisher.publish("t.one", "x")
    publisher.publish_many([OutgoingEvent("t.two", "y")])
    assert log == [(name, "publish", t) for t in ("t.one", "t.two") for name in ("a", "b")]
    assert [(m.message.body, m.message.content_type) for m in sent] == [
        (b"X", "text/x-upper"),
        (b"Y", "text/x-upper"),
    ]
    assert all(m.message.headers == {"x-a": "seen", "x-b": "seen"} for m in sent)
