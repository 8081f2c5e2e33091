"""Middleware and codecs against the real broker: the worker's handler threads, retries,
dead-letters, every publish path (kombu's included), msgpack on the wire."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kombu
import msgpack
import pika
import pytest

import hubbub
from hubbub import Codecs, Hub, Middleware, OutgoingEvent
from hubbub.codecs import MsgpackCodec
from hubbub.producers.kombu import KombuPublisher
from hubbub.testing.broker import delete_hub

pytestmark = pytest.mark.integration


class Log(Middleware):
    """Notes each hook (thread-safe), and stamps a header on what it publishes."""

    def __init__(self, name: str, log: list[Any], lock: threading.Lock) -> None:
        self.name, self.log, self.lock = name, log, lock

    def consume(self, event, call_next):
        self._note(event.id, "in", event.attempt)
        try:
            return call_next(event)
        finally:
            self._note(event.id, "out", event.attempt)

    def publish(self, message, call_next):
        self._note(message.message.message_id, "publish", message.message.type)
        headers = {**(message.message.headers or {}), f"x-{self.name}": "seen"}
        return call_next(
            dataclasses.replace(message, message=message.message.with_headers(headers))
        )

    def _note(self, key: Any, what: str, detail: Any) -> None:
        with self.lock:
            self.log.append((self.name, key, what, detail, threading.get_ident()))


@pytest.fixture
def make_hub(broker_url: str, hub_name: str) -> Iterator[Callable[..., Hub]]:
    """A Hub on the test broker (deleted after the test), and a started worker per call."""
    made: list[tuple[Hub, Any, threading.Thread | None]] = []

    def _make(**options: Any) -> Hub:
        hub = Hub(hub_name, url=broker_url, **options)
        made.append((hub, None, None))
        return hub

    def _start(hub: Hub) -> None:
        hub.apply()
        worker = hub.worker()
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        assert worker.consuming.wait(15), "the worker did not start"
        made.append((hub, worker, thread))

    _make.start = _start  # type: ignore[attr-defined]
    yield _make
    for hub, worker, thread in made:
        if worker is not None and thread is not None:
            worker.stop()
            thread.join(30)
        hub.close()
    if made:
        delete_hub(broker_url, made[0][0].topology)


def _wait(done: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _depth(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_consume_hooks_run_in_order_on_the_handler_thread_on_retries_and_dead_letters(
    make_hub, broker_url
):
    log: list[Any] = []
    lock = threading.Lock()
    hub = make_hub(middleware=[Log("a", log, lock), Log("b", log, lock)])

    @hub.subscriber(
        "flaky", topics=["order.placed"], retry={"attempts": 2, "backoff": "1s", "jitter": False}
    )
    def flaky(event):
        with lock:
            log.append(("handler", event.id, "run", event.attempt, threading.get_ident()))
        raise ValueError("down")

    make_hub.start(hub)
    event_id = hub.publish("order.placed", {"order": 1})
    _wait(lambda: _depth(broker_url, hub.topology.names.dead_letter_queue("flaky")) == 1)

    runs = [entry for entry in log if entry[1] == event_id and entry[2] != "publish"]
    assert [(e[0], e[2], e[3]) for e in runs] == [
        (who, what, attempt)
        for attempt in (1, 2)
        for who, what in [("a", "in"), ("b", "in"), ("handler", "run"), ("b", "out"), ("a", "out")]
    ]
    for attempt in (1, 2):  # each attempt's hooks and handler on one thread, not the test's
        threads = {e[4] for e in runs if e[3] == attempt}
        assert len(threads) == 1 and threads != {threading.get_ident()}


def test_publish_hooks_run_for_publish_publish_many_apublish_kombu_and_handlers(
    make_hub, broker_url
):
    log: list[Any] = []
    lock = threading.Lock()
    hub = make_hub(middleware=[Log("a", log, lock), Log("b", log, lock)])
    seen: dict[str, dict[str, Any]] = {}

    @hub.subscriber("sink", topics=["#"])
    def sink(event):
        with lock:
            seen[event.topic] = event.headers
        if event.topic == "order.placed":
            hubbub.publish("order.confirmed", {})

    make_hub.start(hub)
    hub.publish("order.placed", {})
    hub.publish_many([OutgoingEvent("batch.one", {}), OutgoingEvent("batch.two", {})])
    asyncio.run(hub.apublish("async.one", {}))
    connection = kombu.Connection(broker_url, transport_options={"confirm_publish": True})
    with connection, KombuPublisher(hub.name, connection, middleware=hub.middleware) as publisher:
        publisher.publish("kombu.one", {})
        publisher.publish_many([OutgoingEvent("kombu.two", {})])

    topics = ["order.placed", "batch.one", "batch.two", "async.one", "kombu.one", "kombu.two"]
    _wait(lambda: len(seen) == len(topics) + 1)
    for topic in [*topics, "order.confirmed"]:
        assert seen[topic] == {"x-a": "seen", "x-b": "seen"}, topic
        hooks = [e[0] for e in log if e[2] == "publish" and e[3] == topic]
        assert hooks == ["a", "b"], topic


def test_msgpack_events_cross_the_broker_and_a_foreign_msgpack_message_is_an_event(
    make_hub, broker_url
):
    hub = make_hub(codecs=Codecs(topics={"metrics.#": MsgpackCodec()}))
    seen: dict[str, Any] = {}
    lock = threading.Lock()

    @hub.subscriber("sink", topics=["#"])
    def sink(event):
        with lock:
            seen[event.topic] = event.data

    make_hub.start(hub)
    hub.publish("metrics.cpu", {"load": 0.5, "raw": b"\x00"})
    hub.publish("order.placed", {"order": 1})
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        connection.channel().basic_publish(
            hub.topology.names.exchange,
            "foreign.metric",
            msgpack.packb([1, 2]),
            pika.BasicProperties(content_type="application/msgpack", message_id="f1"),
        )
    finally:
        connection.close()
    _wait(lambda: len(seen) == 3)
    assert seen == {
        "metrics.cpu": {"load": 0.5, "raw": b"\x00"},
        "order.placed": {"order": 1},
        "foreign.metric": [1, 2],
    }
    assert _depth(broker_url, hub.topology.names.dead_letter_queue("sink")) == 0
