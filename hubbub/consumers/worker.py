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
not yet started back to the queue, then closes. Past ``shutdown_timeout`` it
closes anyway: each event whose handler still runs is named in a WARNING
(the broker redelivers it), :meth:`run` raises
:class:`ShutdownTimeoutError`, and no handler thread is waited for.

Time limits. A handler running past its subscriber's ``timeout`` is written
off by the watchdog (:mod:`hubbub.consumers.watchdog`): its event fails like
a raised exception (retry copy or dead-letter), a new thread takes its place,
and :meth:`Worker.health` is unhealthy while written-off threads are stuck.

Permissions. :meth:`run` first checks that the user may write the copies
(:mod:`hubbub.consumers.probe`); a copy the broker refuses later for lack
of permission stops the worker with the fix, and a copy that fails for
another reason releases its event only after a backoff, never in a tight
redelivery loop. A lost connection is
reopened with capped exponential backoff; a queue that disappears is fatal
(:meth:`run` raises) because consuming from a recreated queue would hide that
its events were deleted.
"""

from __future__ import annotations

import logging
import os
import random
import socket
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
from hubbub.codecs import Codecs
from hubbub.connection import node_order, resolve_urls
from hubbub.consumers.acks import AckTracker
from hubbub.consumers.dispatch import Dispatcher
from hubbub.consumers.handling import (
    Handler,
    Outcome,
    copy_destination,
    handle,
    timed_out,
)
from hubbub.consumers.observer import Observer
from hubbub.consumers.probe import check_copy_targets, is_refusal, refusal
from hubbub.consumers.watchdog import HandlerTimeoutError, Watchdog, period, stack_of
from hubbub.envelope import ATTEMPT, topic_of
from hubbub.errors import BrokerConnectionError, HubbubError, PublishError
from hubbub.logs import event_fields
from hubbub.message import Delivery, new_delivery, new_outbound
from hubbub.middleware import check, consuming
from hubbub.producers.publisher import Publisher
from hubbub.topology.durations import format_duration
from hubbub.topology.model import Subscriber, Topology
from hubbub.topology.references import refuse_unusable
from hubbub.transport.pika._frames import one_write
from hubbub.transport.pika.convert import from_pika
from hubbub.transport.pika.params import connect_error, parameters

log = logging.getLogger("hubbub.consumers")

#: Seconds a graceful stop waits for running handlers before closing anyway.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
#: Reconnect backoff: first wait and cap, in seconds.
RECONNECT_FIRST, RECONNECT_CAP = 0.5, 30.0
#: Wait before releasing an event whose copy failed (doubling per failure in a row).
COPY_RETRY_FIRST, COPY_RETRY_CAP = 1.0, 30.0

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
    #: Deliveries whose handler runs: ``id(delivery)`` -> (delivery, generation,
    #: start, thread). Popping an entry claims the delivery (watchdog.py).
    running: dict[int, tuple[Delivery, int, float, int]] = field(default_factory=dict)
    copy_failures: int = 0  # copies failed in a row (the release backoff)


class ShutdownTimeoutError(HubbubError):
    """The shutdown timeout expired with handlers still running; their events go back."""

    def __init__(self, message: str, *, unfinished: list[str]) -> None:
        super().__init__(message)
        self.unfinished = unfinished


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
        middleware: Sequence[Any] = (),
        codecs: Codecs | None = None,
    ) -> None:
        """``middleware`` wraps every handler (on its thread) and every event a
        handler publishes (:mod:`hubbub.middleware`); ``codecs`` decodes
        bodies by content type and encodes what handlers publish."""
        self.topology = topology
        self._middleware = check(middleware)
        self._codecs = codecs
        self.urls = resolve_urls(url)
        where = f"{socket.gethostname()} pid {os.getpid()}"  # replicas told apart in the UI
        self._name = f"{name} ({where})"
        self._params = parameters(node_order(self.urls), name=self._name)
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
        self._publisher = Publisher(
            topology.hub,
            url=url,
            name=f"{name} (copies, {where})",
            middleware=self._middleware,
            codecs=codecs,
        )
        self._connection: SelectConnection | None = None
        self._lock = threading.Lock()
        self._settled: deque[tuple[_Consumer, int, int, Settle]] = deque()
        self._wake_pending = False
        self._stopping = threading.Event()
        self._fatal: HubbubError | None = None
        self._connected_once = False
        self._open_error: BaseException | None = None
        self._opened = False  # the current connection opened
        self._stop_deadline: float | None = None  # monotonic time the stop must end by
        self._unfinished: list[str] = []  # ids of events released at the shutdown timeout
        #: ``host:port`` of the node the consumer is connected to, None between connections.
        self.connected_to: str | None = None
        #: Set while every subscriber is consuming (for health checks and tests).
        self.consuming = threading.Event()
        #: Handler threads still inside a handler when :meth:`run` returned.
        self.left_behind = 0

    def _make_consumer(
        self, spec: Subscriber, handler: Handler, prefetch: int | None, concurrency: int | None
    ) -> _Consumer:
        threads = concurrency or spec.concurrency
        return _Consumer(
            spec=spec,
            # hubbub.publish() in the handler goes through this worker's own connection
            handler=current.through(consuming(self._middleware, handler), lambda: self._publisher),
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
        stuck = {c.spec.name: n for c in self._consumers if (n := c.pool.stuck())}
        details: dict[str, Any] = {
            "consuming": consuming,
            "responsive": responsive,
            "stopping": self._stopping.is_set(),
            "subscribers": self.subscribers,
            "stuck": stuck,
        }
        return responsive and not stuck, details

    # -- lifecycle (any thread) ---------------------------------------------

    def run(self) -> None:
        """Consume until :meth:`stop`; reconnects on its own; raises on fatal errors.

        Nodes are tried round robin from a random start (``node_order``), so
        after losing its node a consumer reconnects to the next one, after
        one backoff wait.
        """
        failures = attempts = 0
        check_copy_targets(self.urls, self.topology.names, self.subscribers, name=self._name)
        limits = [c.spec.timeout for c in self._consumers]
        watchdog = Watchdog(self._watch, interval=period(limits), name="hubbub-watchdog").start()
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
            watchdog.stop()
            self.consuming.clear()
            self._shut_down_pools()
            self._publisher.close()
            if self._connected_once:  # else the caller reports why it never started
                log.info("consumer stopped")
        if self._unfinished:
            raise ShutdownTimeoutError(
                f"stopped at the {self.shutdown_timeout:g}s shutdown timeout with "
                f"{len(self._unfinished)} event(s) unfinished, to be redelivered: "
                f"{', '.join(self._unfinished[:5])}{' ...' if len(self._unfinished) > 5 else ''}",
                unfinished=list(self._unfinished),
            )

    def _shut_down_pools(self) -> None:
        """Stop the handler threads, waiting no longer than the stop's deadline.

        Handler threads are daemon threads: one still running when the
        deadline passes is left behind (its event was released or settled).
        """
        deadline = self._stop_deadline or time.monotonic() + self.shutdown_timeout
        left = 0
        for consumer in self._consumers:
            left += consumer.pool.shutdown(max(0.0, deadline - time.monotonic()))
        self.left_behind = left
        if left:
            log.warning("left %d handler thread(s) behind, still inside a handler", left)

    def stop(self) -> None:
        """Finish the events in hand, release the rest, close (thread-safe, idempotent)."""
        if self._stopping.is_set():
            return
        log.info("stopping: finishing events in hand")
        self._stop_deadline = time.monotonic() + self.shutdown_timeout
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
        threads = consumer.pool.threads
        log.info(
            "consuming %s (prefetch %d, %d handler thread%s, time limit %s)",
            consumer.queue,
            consumer.prefetch,
            threads,
            "" if threads == 1 else "s",
            format_duration(consumer.spec.timeout),
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
            from_pika(props, body),
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
        if _consumer_timeout(reason):
            log.error(
                "the broker closed the channel of %s because an event stayed unacked past "
                "its consumer_timeout: every event the channel held goes back to the queue "
                "and counts towards its delivery limit; keep the subscriber's timeout "
                "(%s) and prefetch x timeout / concurrency below the broker's "
                "consumer_timeout; reconnecting",
                consumer.queue,
                format_duration(consumer.spec.timeout),
            )
        else:
            log.error(
                "channel of %s closed by the broker (%s); reconnecting", consumer.queue, reason
            )
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
        key, running = id(delivery), consumer.running
        running[key] = (delivery, generation, started, threading.get_ident())
        outcome = handle(
            consumer.spec, consumer.queue, consumer.handler, delivery, codecs=self._codecs
        )
        if running.pop(key, None) is None:
            return  # written off past its time limit: settled without this late result
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
        copy = delivery.message.republished(outcome.headers)
        try:
            future = self._publisher.send(new_outbound(exchange, key, copy, False))
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
        if copy_error is not None:
            self._copy_failed(consumer, generation, delivery, outcome, copy_error)
            outcome = replace(outcome, action="release")
        elif outcome.action != "ack":
            consumer.copy_failures = 0
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
        if copy_error is None:
            self._hand_over(consumer, generation, delivery.tag, "ack")

    def _copy_failed(
        self,
        consumer: _Consumer,
        generation: int,
        delivery: Delivery,
        outcome: Outcome,
        error: BaseException,
    ) -> None:
        """Release an event whose copy failed: after a backoff, or stop if refused.

        Releasing at once would redeliver it at once, fail its handler and
        its copy again, and burn its delivery limit in milliseconds. A
        permission refusal will not pass by itself: the worker stops, saying
        which grant is missing (the event stays queued).
        """
        if is_refusal(error):
            exchange, _ = copy_destination(self.topology.names, consumer.spec.name, outcome)
            message = refusal(self.urls[0], self.topology.names, self.subscribers, [exchange])
            self._post(partial(self._fail, f"cannot retry or dead-letter: {message}"))
            self._hand_over(consumer, generation, delivery.tag, "requeue")
            return
        consumer.copy_failures += 1
        wait = min(COPY_RETRY_CAP, COPY_RETRY_FIRST * 2 ** min(consumer.copy_failures - 1, 10))
        log.error(
            "could not %s event %s from %s, releasing it to its queue in %.0fs: %s",
            outcome.action,
            outcome.event_id,
            consumer.queue,
            wait,
            error,
        )
        release = partial(self._hand_over, consumer, generation, delivery.tag, "requeue")
        self._post(partial(self._call_later, 0.0 if self._stopping.is_set() else wait, release))

    def _call_later(self, delay: float, callback: Callable[[], None]) -> None:
        if self._connection is not None:  # on the I/O thread
            self._connection.ioloop.call_later(delay, callback)

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
            self._connection.ioloop.call_later(self.shutdown_timeout, self._shutdown_expired)
        self._finish_stop_when_drained()

    def _shutdown_expired(self) -> None:
        """Close with events in hand: name each one a handler still runs (I/O thread).

        Claiming each running delivery makes its handler's late result void:
        the broker redelivers the event, nothing acks it twice.
        """
        for consumer in self._consumers:
            for key, entry in list(consumer.running.items()):
                if consumer.running.pop(key, None) is entry:
                    self._released_unfinished(consumer, entry[0])
        self._close()

    def _released_unfinished(self, consumer: _Consumer, delivery: Delivery) -> None:
        headers = delivery.message.headers or {}
        event_id = delivery.message.message_id or f"tag {delivery.tag}"
        topic = topic_of(delivery.routing_key, headers)
        attempt = headers.get(ATTEMPT)
        attempt = attempt if isinstance(attempt, int) else 1
        self._unfinished.append(event_id)
        log.warning(
            "event %s (%s) of %s released unfinished: its handler still ran at the %gs "
            "shutdown timeout; the broker will deliver it again",
            event_id,
            topic,
            consumer.spec.name,
            self.shutdown_timeout,
            extra=event_fields(event_id, topic, consumer.spec.name, attempt),
        )

    # -- time limits (the watchdog thread) ----------------------------------

    def _watch(self, now: float) -> None:
        for consumer in self._consumers:
            limit = consumer.spec.timeout
            for key, entry in list(consumer.running.items()):
                if now - entry[2] > limit:
                    try:
                        self._write_off(consumer, key, entry)
                    except Exception:  # the watchdog must keep watching
                        log.exception("could not fail a handler past its time limit")

    def _write_off(
        self, consumer: _Consumer, key: int, entry: tuple[Delivery, int, float, int]
    ) -> None:
        """Fail a delivery whose handler is past its limit; replace the stuck thread.

        The thread is written off first: if its handler returns meanwhile, it
        loses the claim below to nobody (its own pop wins) and simply leaves
        its pool, where its replacement already runs.
        """
        delivery, generation, started, ident = entry
        consumer.pool.write_off(ident)
        if consumer.running.pop(key, None) is not entry:
            return  # the handler returned just now: its own result stands
        error = HandlerTimeoutError(consumer.spec.timeout)
        outcome = timed_out(
            consumer.spec, consumer.queue, delivery, error, stack_of(ident), codecs=self._codecs
        )
        log.warning(
            "event %s (%s) %s in %s on attempt %d; its thread is written off and replaced, %s",
            outcome.event_id,
            outcome.topic,
            error,
            consumer.spec.name,
            outcome.attempt,
            f"retrying in {outcome.delay:.1f}s"
            if outcome.action == "retry"
            else "dead-lettering it",
            extra=event_fields(
                outcome.event_id, outcome.topic, consumer.spec.name, outcome.attempt
            ),
        )
        if generation != consumer.generation:
            # Its channel is gone and the broker has redelivered it already: no
            # copy; the void hand-over only takes it out of flight (metrics).
            self._hand_over(consumer, generation, delivery.tag, "requeue")
            return
        self._copy(consumer, generation, delivery, outcome, started)

    def _finish_stop_when_drained(self) -> None:
        if all(len(c.tracker) == 0 for c in self._consumers):
            self._close()

    def _close(self) -> None:
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()


def _consumer_timeout(reason: BaseException) -> bool:
    """True for the broker's ``consumer_timeout`` closing a channel.

    RabbitMQ 3.10 says: ``PRECONDITION_FAILED - delivery acknowledgement on
    channel 1 timed out. Timeout value used: 3000 ms. ...`` (406).
    """
    text = str(getattr(reason, "reply_text", ""))
    return (
        isinstance(reason, pe.ChannelClosedByBroker)
        and reason.reply_code == 406
        and "delivery acknowledgement" in text
        and "timed out" in text
    )
