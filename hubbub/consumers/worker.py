"""The consumer process: each subscriber on its own channel and queue.

Thread model. :meth:`Worker.run` drives one pika SelectConnection on the
calling thread (the I/O thread). Each subscriber gets its own channel with
its own prefetch, and a pool of ``concurrency`` handler threads. Handlers
never run on the I/O thread, so heartbeats flow while a handler takes
minutes. A handler thread decides an event's fate and, for a retry or a
dead-letter, publishes the copy and moves on; the copy's confirm hands the
original's ack to the I/O thread (ack, nack and cancel happen on the I/O
thread alone, coalesced by :class:`~hubbub.consumers.acks.AckTracker`).

Guarantees. An event is acked only after its handler returned, or after its
retry or dead-letter copy was confirmed; anything else (a crash, a lost
connection, a failed copy) leaves it to be redelivered. One subscriber's
failures never touch another's queue.

Stopping. :meth:`Worker.stop` (any thread, e.g. on SIGTERM) cancels the
consumers, lets handlers finish and acks their events, releases deliveries
not yet started back to the queue, then closes. A lost connection is
reopened with capped exponential backoff; a queue that disappears is fatal
(:meth:`run` raises) because consuming from a recreated queue would hide that
its events were deleted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

import pika
import pika.exceptions as pe
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

from hubbub import current, inbound
from hubbub.connection import connect_error, node_order, parameters, resolve_urls
from hubbub.consumers.acks import AckTracker
from hubbub.consumers.dispatch import Dispatcher
from hubbub.consumers.handling import (
    Delivery,
    Handler,
    Outcome,
    copy_destination,
    copy_properties,
    handle,
    new_delivery,
)
from hubbub.consumers.observer import Observer
from hubbub.errors import BrokerConnectionError, HubbubError, PublishError
from hubbub.frames import one_write
from hubbub.logs import event_fields
from hubbub.producers.publisher import Publisher
from hubbub.topology.model import Subscriber, Topology
from hubbub.topology.references import refuse_unusable

log = logging.getLogger("hubbub.consumers")

#: Seconds a graceful stop waits for running handlers before closing anyway.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
#: Reconnect backoff: first wait and cap, in seconds.
RECONNECT_FIRST, RECONNECT_CAP = 0.5, 30.0

Settle = Literal["ack", "requeue"]
_DONE = {
    "ack": "handled",
    "retry": "scheduled for retry",
    "dead-letter": "dead-lettered",
    "release": "released to its queue",
}


@dataclass
class _Consumer:
    spec: Subscriber
    handler: Handler
    queue: str
    pool: Dispatcher
    prefetch: int
    channel: Channel | None = None
    consumer_tag: str | None = None
    tracker: AckTracker = field(default_factory=AckTracker)
    generation: int = 0


class Worker:
    """Consume the named subscribers of a topology until stopped."""

    def __init__(
        self,
        topology: Topology,
        handlers: Mapping[str, Handler],
        *,
        url: str | None = None,
        subscribers: Sequence[str] | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        observer: Observer | None = None,
        name: str = "hubbub consumer",
    ) -> None:
        self.topology = topology
        self.urls = resolve_urls(url)
        self._params = parameters(node_order(self.urls), name=name)
        self.shutdown_timeout = shutdown_timeout
        self.observer = observer or Observer()
        chosen = list(subscribers) if subscribers else [s.name for s in topology.subscribers]
        refuse_unusable(  # async def, wrong signatures, dont_retry typos: before consuming
            [topology.subscriber(n) for n in chosen],
            handlers,
            source=f"consumer of hub {topology.hub!r}",
        )
        self._consumers = [
            self._make_consumer(topology.subscriber(n), handlers[n], prefetch, concurrency)
            for n in chosen
        ]
        self._publisher = Publisher(topology.hub, url=url, name=f"{name} (copies)")
        self._connection: SelectConnection | None = None
        self._lock = threading.Lock()
        self._settled: deque[tuple[_Consumer, int, int, Settle]] = deque()
        self._wake_pending = False
        self._stopping = threading.Event()
        self._fatal: HubbubError | None = None
        self._connected_once = False
        self._open_error: BaseException | None = None
        self._opened = False  # the current connection opened
        #: ``host:port`` of the node the consumer is connected to, None between connections.
        self.connected_to: str | None = None
        #: Set while every subscriber is consuming (for health checks and tests).
        self.consuming = threading.Event()

    def _make_consumer(
        self, spec: Subscriber, handler: Handler, prefetch: int | None, concurrency: int | None
    ) -> _Consumer:
        threads = concurrency or spec.concurrency
        return _Consumer(
            spec=spec,
            # hubbub.publish() in the handler goes through this worker's own connection
            handler=current.through(handler, lambda: self._publisher),
            queue=self.topology.names.queue(spec.name),
            pool=Dispatcher(threads, name=f"hubbub-{spec.name}"),
            prefetch=prefetch or max(spec.prefetch, threads),
        )

    @property
    def subscribers(self) -> list[str]:
        return [c.spec.name for c in self._consumers]

    def health(self, timeout: float = 3.0) -> tuple[bool, dict[str, Any]]:
        """Healthy: connected, consuming every subscriber, I/O thread answering (any thread).

        The I/O thread must run a posted callback within ``timeout`` s: a
        connection that looks open while its loop is stuck is not healthy. The
        margin is wide on purpose: a busy machine must not make health flap.
        """
        consuming = self.consuming.is_set()
        answered = threading.Event()
        if consuming:
            self._post(answered.set)
        responsive = consuming and answered.wait(timeout)
        details: dict[str, Any] = {
            "consuming": consuming,
            "responsive": responsive,
            "stopping": self._stopping.is_set(),
            "subscribers": self.subscribers,
        }
        return responsive, details

    # -- lifecycle (any thread) ---------------------------------------------

    def run(self) -> None:
        """Consume until :meth:`stop`; reconnects on its own; raises on fatal errors.

        Nodes are tried round robin from a random start (``node_order``), so
        after losing its node a consumer reconnects to the next one, after
        one backoff wait.
        """
        failures = attempts = 0
        try:
            while not self._stopping.is_set():
                params = self._params[attempts % len(self._params)]
                attempts += 1
                opened = self._run_connection(params)
                if self._fatal is not None:
                    raise self._fatal
                if self._stopping.is_set():
                    break
                if not self._connected_once:
                    failures += 1  # the first start tries every node once, then gives up
                    if failures < len(self._params):
                        continue
                    raise connect_error(self._open_error or OSError("closed"), self.urls)
                failures = 1 if opened else failures + 1
                wait = min(RECONNECT_CAP, RECONNECT_FIRST * 2 ** min(failures, 10))
                wait = wait / 2 + random.uniform(0, wait / 2)
                log.warning("connection to the broker lost; reconnecting in %.1fs", wait)
                self._stopping.wait(wait)
        finally:
            self.consuming.clear()
            for consumer in self._consumers:
                consumer.pool.shutdown()
            self._publisher.close()
            if self._connected_once:  # else the caller reports why it never started
                log.info("consumer stopped")

    def stop(self) -> None:
        """Finish the events in hand, release the rest, close (thread-safe, idempotent)."""
        if self._stopping.is_set():
            return
        log.info("stopping: finishing events in hand")
        self._stopping.set()
        self._post(self._begin_stop)

    # -- the I/O thread -----------------------------------------------------

    def _run_connection(self, params: pika.ConnectionParameters) -> bool:
        """Run one connection until it closes; True if it had opened."""
        self._open_error = None
        self._opened = False
        self._connection = SelectConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        self._connection.ioloop.start()
        self.consuming.clear()
        self.connected_to = None
        with self._lock:
            # A wake-up posted to the dead ioloop never ran: the next verdict
            # must post again, or acks on the new connection would stall.
            self._wake_pending = False
        for consumer in self._consumers:
            consumer.generation += 1  # outcomes of the old channel are void
            consumer.channel, consumer.consumer_tag = None, None
            consumer.tracker = AckTracker()
        if self._opened:
            self.observer.disconnected()
        return self._opened

    def _on_open(self, connection: SelectConnection) -> None:
        self._connected_once = self._opened = True
        inbound.install(connection)
        self.observer.connected()
        if self._stopping.is_set():  # stop() came while connecting: nothing to drain
            connection.close()
            return
        self.connected_to = f"{connection.params.host}:{connection.params.port}"
        log.info("connected to %s", self.connected_to)
        for consumer in self._consumers:
            connection.channel(on_open_callback=lambda ch, c=consumer: self._on_channel(c, ch))

    def _on_open_error(self, connection: SelectConnection, error: BaseException | str) -> None:
        self._open_error = error if isinstance(error, BaseException) else OSError(str(error))
        if isinstance(error, pe.ProbableAuthenticationError | pe.ProbableAccessDeniedError):
            self._fatal = connect_error(error, self.urls)
        connection.ioloop.stop()

    def _on_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        if not self._stopping.is_set():
            log.warning("connection closed: %s", reason)
        connection.ioloop.stop()

    def _on_channel(self, consumer: _Consumer, channel: Channel) -> None:
        consumer.channel = channel
        channel.add_on_close_callback(lambda ch, why, c=consumer: self._on_channel_closed(c, why))
        channel.add_on_cancel_callback(lambda frame, c=consumer: self._on_cancelled(c))
        channel.basic_qos(
            prefetch_count=consumer.prefetch,
            callback=lambda _f: channel.queue_declare(
                consumer.queue, passive=True, callback=lambda _f2: self._consume(consumer, channel)
            ),
        )

    def _consume(self, consumer: _Consumer, channel: Channel) -> None:
        if self._stopping.is_set():
            return
        generation = consumer.generation
        consumer.consumer_tag = channel.basic_consume(
            consumer.queue, partial(self._on_message, consumer, generation)
        )
        log.info(
            "consuming %s (prefetch %d, %d handler threads)",
            consumer.queue,
            consumer.prefetch,
            consumer.pool.threads,
        )
        if all(c.consumer_tag for c in self._consumers):
            self.consuming.set()

    def _on_message(
        self,
        consumer: _Consumer,
        generation: int,
        _channel: Channel,
        method: Basic.Deliver,
        props: pika.BasicProperties,
        body: bytes,
    ) -> None:
        delivery = new_delivery(
            method.delivery_tag,
            method.exchange,
            method.routing_key,
            method.redelivered,
            props,
            body,
        )
        consumer.tracker.add(delivery.tag)
        self.observer.started(consumer.spec.name)
        consumer.pool.submit(self._work, consumer, generation, delivery)

    def _on_channel_closed(self, consumer: _Consumer, reason: BaseException) -> None:
        consumer.channel = None
        self.consuming.clear()
        if self._stopping.is_set() or self._connection is None or not self._connection.is_open:
            return
        if isinstance(reason, pe.ChannelClosedByBroker) and reason.reply_code == 404:
            if consumer.generation > 0:
                self._fail(
                    f"queue {consumer.queue!r} was deleted while consuming from it (its "
                    f"events are gone): re-apply the topology of hub {self.topology.hub!r} "
                    "and restart the consumer"
                )
            else:
                self._fail(
                    f"queue {consumer.queue!r} does not exist: run 'hubbub topology apply' "
                    f"for hub {self.topology.hub!r} first"
                )
            return
        log.error("channel of %s closed by the broker (%s); reconnecting", consumer.queue, reason)
        self._connection.close()

    def _on_cancelled(self, consumer: _Consumer) -> None:
        # The broker cancels a consumer when its queue is deleted, but also
        # when a node stops: reconnect, and let the passive declare on the new
        # channel tell the two apart (404: the queue is gone, which is fatal).
        if self._stopping.is_set() or self._connection is None:
            return
        log.warning("the broker cancelled consuming from %s; re-checking it", consumer.queue)
        self.consuming.clear()
        if self._connection.is_open:
            self._connection.close()

    def _fail(self, message: str) -> None:
        log.debug(message)  # run() raises it: the caller reports it once
        self._fatal = HubbubError(message)
        self._stopping.set()
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    # -- settling ----------------------------------------------------------

    def _post(self, callback: Callable[[], None]) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            connection.ioloop.add_callback_threadsafe(callback)
        except Exception:
            log.debug("ioloop closed", exc_info=True)

    def _work(self, consumer: _Consumer, generation: int, delivery: Delivery) -> None:
        """On a handler thread: handle, then copy (retry, dead-letter) or hand over the ack."""
        if self._stopping.is_set() or generation != consumer.generation:
            # not started: stopping, or its channel is gone
            self._hand_over(consumer, generation, delivery.tag, "requeue")
            return
        started = time.perf_counter()
        outcome = handle(consumer.spec, consumer.queue, consumer.handler, delivery)
        if outcome.action == "ack":
            self._finish(consumer, generation, delivery, outcome, started, None)
        else:
            self._copy(consumer, generation, delivery, outcome, started)

    def _copy(
        self,
        consumer: _Consumer,
        generation: int,
        delivery: Delivery,
        outcome: Outcome,
        started: float,
    ) -> None:
        """Publish the retry or dead-letter copy; the original settles on its confirm.

        The handler thread does not wait for the confirm: it goes on to the
        next delivery, and the confirm callback (on the publisher's I/O
        thread) hands the ack over. The original stays unacked, and counted
        by the prefetch, until then.
        """
        exchange, key = copy_destination(self.topology.names, consumer.spec.name, outcome)
        props = copy_properties(delivery.properties, outcome.headers or {})
        try:
            future = self._publisher.send(exchange, key, delivery.body, props)
        except (PublishError, BrokerConnectionError) as exc:
            self._finish(consumer, generation, delivery, outcome, started, exc)
            return
        future.add_done_callback(
            lambda done: self._finish(
                consumer, generation, delivery, outcome, started, done.exception()
            )
        )

    def _finish(
        self,
        consumer: _Consumer,
        generation: int,
        delivery: Delivery,
        outcome: Outcome,
        started: float,
        copy_error: BaseException | None,
    ) -> None:
        """Record the outcome and hand the verdict to the I/O thread (any thread)."""
        settle: Settle = "ack"
        if copy_error is not None:
            log.error(
                "could not %s event %s from %s, leaving it queued: %s",
                outcome.action,
                outcome.event_id,
                consumer.queue,
                copy_error,
            )
            settle, outcome = "requeue", replace(outcome, action="release")
        self.observer.finished(consumer.spec.name, outcome, time.perf_counter() - started)
        if log.isEnabledFor(logging.DEBUG):  # the fields cost more than a trivial handler
            log.debug(
                "event %s (%s) %s by %s on attempt %d",
                outcome.event_id,
                outcome.topic,
                _DONE[outcome.action],
                consumer.spec.name,
                outcome.attempt,
                extra=event_fields(
                    outcome.event_id, outcome.topic, consumer.spec.name, outcome.attempt
                ),
            )
        self._hand_over(consumer, generation, delivery.tag, settle)

    def _hand_over(self, consumer: _Consumer, generation: int, tag: int, settle: Settle) -> None:
        with self._lock:
            self._settled.append((consumer, generation, tag, settle))
            if self._wake_pending:
                return
            self._wake_pending = True
        self._post(self._settle)

    def _settle(self) -> None:
        with self._lock:
            self._wake_pending = False
            batch = list(self._settled)
            self._settled.clear()
        acks: dict[int, tuple[_Consumer, list[int]]] = {}
        for consumer, generation, tag, settle in batch:
            channel = consumer.channel
            self.observer.settled(consumer.spec.name)
            if generation != consumer.generation or channel is None or not channel.is_open:
                continue  # the channel that delivered it is gone: the broker redelivers
            if settle == "ack":
                entry = acks.get(id(consumer))
                if entry is None:  # not setdefault: it would build a tuple per delivery
                    entry = acks[id(consumer)] = (consumer, [])
                entry[1].append(tag)
            else:
                consumer.tracker.forget(tag)
                channel.basic_nack(tag, requeue=True)
        with one_write(self._connection):  # the batch's acks in one system call
            for consumer, tags in acks.values():
                assert consumer.channel is not None
                for tag, multiple in consumer.tracker.complete(tags):
                    consumer.channel.basic_ack(tag, multiple=multiple)
        if self._stopping.is_set():
            self._finish_stop_when_drained()

    def _begin_stop(self) -> None:
        self.consuming.clear()
        for consumer in self._consumers:
            channel = consumer.channel
            if channel is not None and channel.is_open and consumer.consumer_tag:
                channel.basic_cancel(consumer.consumer_tag)
        if self._connection is not None:
            self._connection.ioloop.call_later(self.shutdown_timeout, self._close)
        self._finish_stop_when_drained()

    def _finish_stop_when_drained(self) -> None:
        if all(len(c.tracker) == 0 for c in self._consumers):
            self._close()

    def _close(self) -> None:
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()
