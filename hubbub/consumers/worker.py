"""The consumer process: each subscriber on its own queue, on a consumer transport.

Thread model. :meth:`Worker.run` runs a consumer transport
(:class:`~hubbub.transport.base.ConsumerTransport`, RabbitMQ by default) on
the calling thread (the transport's thread); the worker is its
:class:`~hubbub.transport.base.ConsumerEvents`. Each subscriber consumes its
own queue with its own prefetch, and has a pool of ``concurrency`` handler
threads. Handlers never run on the transport's thread, so heartbeats flow
while a handler takes minutes (``inline=True`` runs them there, for a
transport with no I/O to keep flowing). A handler thread decides an event's
fate and, for a retry or a dead-letter, publishes the copy and moves on; the
copy's confirm settles the original (:mod:`hubbub.consumers.flight`,
:mod:`hubbub.consumers.copies`); the transport coalesces the acks.

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
(the transport's ``preflight``); a copy the broker refuses later for lack of
permission stops the worker with the fix, and a copy that fails for another
reason releases its event only after a backoff, never in a tight redelivery
loop. The transport reopens a lost connection itself; a queue that
disappears is fatal (:meth:`run` raises) because consuming from a recreated
queue would hide that its events were deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hubbub import current
from hubbub.callables import is_async
from hubbub.codecs import Codecs
from hubbub.connection import resolve_urls
from hubbub.consumers.copies import Copies, copy_targets
from hubbub.consumers.dispatch import Dispatcher
from hubbub.consumers.flight import IDLE, Flight, InFlight, Inline
from hubbub.consumers.handling import Handler
from hubbub.consumers.observer import Observer
from hubbub.consumers.tasks import (
    DEFAULT_LOOP_LAG,
    InlineLoops,
    InlineTasks,
    Loops,
    LoopWatch,
    TaskPool,
    task_of,
)
from hubbub.consumers.watchdog import Watchdog, period
from hubbub.envelope import ATTEMPT, topic_of
from hubbub.errors import ConfigurationError, HubbubError
from hubbub.inbox import Inbox, InboxStore
from hubbub.logs import event_fields
from hubbub.message import Delivery
from hubbub.middleware import check, consuming
from hubbub.producers.publisher import Publisher
from hubbub.topology import settings
from hubbub.topology.durations import format_duration
from hubbub.topology.model import Subscriber, Topology
from hubbub.topology.references import refuse_unusable
from hubbub.transport import consumer_transport
from hubbub.transport.base import ConsumerTransport, Subscription
from hubbub.transport.errors import CopyTargetError

log = logging.getLogger("hubbub.consumers")

#: Seconds a graceful stop waits for running handlers before closing anyway.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
#: Seconds the shutdown timeout waits for acks of handlers that just returned.
SETTLE_GRACE = 1.0
#: What a worker's connections are called (with :func:`whereabouts` after it).
DEFAULT_NAME = "hubbub consumer"


def whereabouts() -> str:
    """This host and process, named in connection names (replicas told apart in the UI)."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class ShutdownTimeoutError(HubbubError):
    """The shutdown timeout expired with handlers still running; their events go back."""

    def __init__(self, message: str, *, unfinished: list[str]) -> None:
        super().__init__(message)
        self.unfinished = unfinished


class Worker:
    """Consume the named subscribers of a topology until stopped.

    ``transport``: what it consumes through (default: RabbitMQ at ``url``).
    ``publisher``: what retry and dead-letter copies and ``hubbub.publish``
    in handlers go through (default: a publisher of its own on ``url``,
    closed when :meth:`run` returns). ``inline``: run handlers on the
    transport's thread, no pools (for the in-memory transport). ``rng``:
    what draws the retry jitter (seeded: repeatable).
    ``middleware`` wraps every handler (on its thread) and every event a
    handler publishes (:mod:`hubbub.middleware`); ``codecs`` decodes bodies
    by content type and encodes what handlers publish. ``inbox``: where the
    subscribers marked ``idempotent`` record the events they handled
    (:mod:`hubbub.inbox`; required when one of them runs here, unless an
    :class:`~hubbub.inbox.Inbox` is among the middlewares already).
    """

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
        name: str = DEFAULT_NAME,
        middleware: Sequence[Any] = (),
        codecs: Codecs | None = None,
        inbox: InboxStore | None = None,
        transport: ConsumerTransport | None = None,
        publisher: Publisher | None = None,
        inline: bool = False,
        rng: random.Random | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        loop_lag: float = DEFAULT_LOOP_LAG,
    ) -> None:
        self.topology = topology
        self._middleware = check(middleware)
        self._codecs = codecs
        self.urls = resolve_urls(url)
        where = whereabouts()
        self.transport = transport or consumer_transport(self.urls, name=f"{name} ({where})")
        self.shutdown_timeout = shutdown_timeout
        self.observer = observer or Observer()
        #: The inbox of the subscribers marked ``idempotent`` (``skipped`` counts what it
        #: skipped); None without a store, or when the middlewares hold one already.
        self.inbox = (
            Inbox(inbox, on_skip=self.observer.skipped)
            if inbox is not None and not any(isinstance(m, Inbox) for m in self._middleware)
            else None
        )
        chosen = list(subscribers) if subscribers else [s.name for s in topology.subscribers]
        specs = {n: topology.subscriber(n) for n in chosen}
        refuse_unusable(  # generators, wrong signatures, settings, dont_retry typos: up front
            specs.values(), handlers, source=f"consumer of hub {topology.hub!r}"
        )
        # Settings bound once here (unless the caller did), not per event.
        handlers = {n: settings.bind(specs[n], handlers[n]) for n in chosen}
        self._owns_publisher = publisher is None
        self._publisher = publisher or Publisher(
            topology.hub,
            url=url,
            name=f"{name} (copies, {where})",
            middleware=self._middleware,
            codecs=codecs,
        )
        #: Where ``async def`` handlers run: ``loop`` (the app's), else one of the worker's own.
        self.loops: Loops = InlineLoops(name="hubbub") if inline else Loops(loop, name="hubbub")
        self._loop_lag = loop_lag
        self._loop_watch: LoopWatch | None = None
        self._flights = [
            self._make_flight(i, topology.subscriber(n), handlers[n], prefetch, concurrency, inline)
            for i, n in enumerate(chosen)
        ]
        self._stopping = threading.Event()
        self._in_flight = InFlight(
            self.transport,
            Copies(topology.names, self._publisher, url=self.urls[0], subscribers=chosen),
            self.observer,
            stopping=self._stopping,
            fail=self._fail,
            settled=self._finish_stop_when_drained,
            rng=rng,
            codecs=codecs,
            awaiter=self.loops.run,
        )
        self._fatal: HubbubError | None = None
        self._connected = False  # a connection is open (transport thread)
        self._connected_once = False
        self._stop_deadline: float | None = None  # monotonic time the stop must end by
        self._unfinished: list[str] = []  # ids of events released at the shutdown timeout
        #: ``host:port`` of the node the consumer is connected to, None between connections.
        self.connected_to: str | None = None
        #: Set while every subscriber is consuming (for health checks and tests).
        self.consuming = threading.Event()
        #: Handler threads still inside a handler when :meth:`run` returned.
        self.left_behind = 0
        # Inline (the in-memory hub) it runs at every step of a test: its
        # connecting and stopping is no news there.
        self._lifecycle = logging.DEBUG if inline else logging.INFO

    def _make_flight(
        self,
        index: int,
        spec: Subscriber,
        handler: Handler,
        prefetch: int | None,
        concurrency: int | None,
        inline: bool,
    ) -> Flight:
        asynchronous = is_async(handler)
        limit = concurrency or spec.concurrency
        threads = 1 if inline else limit
        queue = self.topology.names.queue(spec.name)
        name = f"hubbub-{spec.name}"
        pool: Dispatcher | Inline | TaskPool | InlineTasks
        if asynchronous:
            assert isinstance(self.loops, InlineLoops) or not inline
            pool = (
                InlineTasks(self.loops)  # type: ignore[arg-type]
                if inline
                else TaskPool(self.loops, limit, name=name)
            )
        else:
            pool = Inline() if inline else Dispatcher(threads, name=name)
        return Flight(
            spec=spec,
            # hubbub.publish() in the handler goes through this worker's own publisher
            handler=current.through(self._wrapped(spec, handler), lambda: self._publisher),
            subscription=Subscription(
                index, queue, prefetch or max(spec.prefetch, threads), spec.timeout
            ),
            pool=pool,
            asynchronous=asynchronous,
        )

    def _wrapped(self, spec: Subscriber, handler: Handler) -> Handler:
        """``handler`` in the worker's middlewares (an idempotent subscriber's in its inbox
        first); one that cannot wrap it is refused."""
        if spec.idempotent:
            handler = self._inboxed(spec, handler)
        try:
            return consuming(self._middleware, handler)
        except TypeError as exc:
            raise ConfigurationError(f"subscriber {spec.name}: {exc}") from None

    def _inboxed(self, spec: Subscriber, handler: Handler) -> Handler:
        if self.inbox is not None:
            busy = getattr(self.inbox.store, "busy_timeout", None)
            if isinstance(busy, int | float) and spec.timeout <= busy:
                log.warning(
                    "subscriber %s: its timeout (%gs) is not longer than its inbox's "
                    "busy_timeout (%gs): an attempt waiting for another attempt of the same "
                    "event may be written off first; give the store a shorter busy_timeout",
                    spec.name,
                    spec.timeout,
                    busy,
                )
            return consuming([self.inbox], handler)
        if any(isinstance(m, Inbox) for m in self._middleware):
            return handler  # the middlewares' inbox runs it once already
        raise ConfigurationError(
            f"subscriber {spec.name} is idempotent, so its consumer needs an inbox to "
            "record the events it handled: give 'hubbub consume --inbox DSN' (PostgreSQL), "
            "or Hub(..., inbox=PostgresStore(dsn)) in code (see docs/inbox.md)"
        )

    @property
    def subscribers(self) -> list[str]:
        return [f.spec.name for f in self._flights]

    def health(self, timeout: float = 3.0) -> tuple[bool, dict[str, Any]]:
        """Healthy: connected, consuming every subscriber, transport thread answering (any thread).

        The transport's thread must run a posted callback within ``timeout``
        s: a connection that looks open while its loop is stuck is not
        healthy. The margin is wide on purpose: a busy machine must not make
        health flap.
        """
        consuming = self.consuming.is_set()
        responsive = consuming and self.transport.responsive(timeout)
        stuck = {f.spec.name: n for f in self._flights if (n := f.pool.stuck())}
        watch = self._loop_watch
        blocked = watch.overdue() if watch is not None else 0.0
        details: dict[str, Any] = {
            "consuming": consuming,
            "responsive": responsive,
            "stopping": self._stopping.is_set(),
            "subscribers": self.subscribers,
            "stuck": stuck,
        }
        if watch is not None:
            details["loop_blocked"] = round(blocked, 3)
        return responsive and not stuck and not blocked, details

    # -- lifecycle (any thread) ---------------------------------------------

    def run(self) -> None:
        """Consume until :meth:`stop`; the transport reconnects; raises on fatal errors."""
        subscriptions = [f.subscription for f in self._flights]
        try:
            self.transport.preflight(subscriptions, copy_targets(self.topology.names))
        except CopyTargetError as exc:
            raise self._in_flight.copies.unusable(exc) from None
        limits = [f.spec.timeout for f in self._flights]
        interval = period(limits)
        if any(f.asynchronous for f in self._flights) and not isinstance(self.loops, InlineLoops):
            loop = self.loops.loop()  # the app's, or the worker's own (started now)
            self._loop_watch = LoopWatch(loop, self._blocking, threshold=self._loop_lag).start()
            interval = min(interval, self._loop_lag / 4)
        watchdog = Watchdog(self._watch, interval=interval, name="hubbub-watchdog").start()
        try:
            self.transport.run(subscriptions, _Events(self))
            if self._fatal is not None:
                raise self._fatal
        finally:
            watchdog.stop()
            self.consuming.clear()
            self._shut_down_pools()
            if self._loop_watch is not None:
                self._loop_watch.stop()
            if not isinstance(self.loops, InlineLoops):
                self.loops.close()
            if self._owns_publisher:
                self._publisher.close()
            if self._connected_once:  # else the caller reports why it never started
                log.log(self._lifecycle, "consumer stopped")
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
        left = tasks = 0
        for flight in self._flights:
            behind = flight.pool.shutdown(max(0.0, deadline - time.monotonic()))
            left += behind
            tasks += behind if flight.asynchronous else 0
        self.left_behind = left
        if left - tasks:
            log.warning("left %d handler thread(s) behind, still inside a handler", left - tasks)
        if tasks:
            log.warning("cancelled %d handler task(s) still running at the deadline", tasks)

    def stop(self) -> None:
        """Finish the events in hand, release the rest, close (thread-safe, idempotent)."""
        if self._stopping.is_set():
            return
        log.info("stopping: finishing events in hand")
        self._stop_deadline = time.monotonic() + self.shutdown_timeout
        self._stopping.set()
        self.transport.call_soon(self._begin_stop)
        if not self._connected:  # nothing to drain (and the call above may be dropped)
            self.transport.close()

    # -- what the transport tells (its own thread; see _Events) -------------

    def _on_connected(self, node: str) -> None:
        """A connection opened to ``node``: consumers start next, unless stopping."""
        self._connected_once = self._connected = True
        self.observer.connected()
        if self._stopping.is_set():  # stop() came while connecting: nothing to drain
            self.transport.close()
            return
        self.connected_to = node  # the transport logs the connect

    def _on_consuming(self, subscription: Subscription, epoch: int) -> None:
        """A subscriber consumes (again), in connection ``epoch``."""
        flight = self._flights[subscription.index]
        flight.epoch = epoch
        threads = flight.pool.threads
        log.log(
            self._lifecycle,
            "consuming %s (prefetch %d, %d handler %s%s, time limit %s)",
            subscription.queue,
            subscription.prefetch,
            threads,
            "task" if flight.asynchronous else "thread",
            "" if threads == 1 else "s",
            format_duration(flight.spec.timeout),
        )
        if all(f.epoch == epoch for f in self._flights) and not self._stopping.is_set():
            self.consuming.set()

    def _on_delivered(self, subscription: Subscription, epoch: int, delivery: Delivery) -> None:
        """A delivery arrived: to its subscriber's handler threads."""
        flight = self._flights[subscription.index]
        self.observer.started(flight.spec.name)
        in_flight = self._in_flight
        work = in_flight.awork if flight.asynchronous else in_flight.work
        flight.pool.submit(work, flight, epoch, delivery)  # type: ignore[arg-type]

    def _on_disconnected(self) -> None:
        """The connection closed: what was in flight on it is void (redelivered)."""
        self.consuming.clear()
        self.connected_to = None
        self._connected = False
        for flight in self._flights:
            flight.epoch = IDLE  # outcomes of the old connection are void
        self.observer.disconnected()
        if self._stopping.is_set():
            self.transport.close()

    # -- stopping (the transport's thread) ----------------------------------

    def _fail(self, message: str) -> None:
        log.debug(message)  # run() raises it: the caller reports it once
        self._fatal = HubbubError(message)
        self._stopping.set()
        self.transport.close()

    def _begin_stop(self) -> None:
        self.consuming.clear()
        self.transport.cancel()
        self.transport.call_later(self.shutdown_timeout, self._shutdown_expired)
        self._finish_stop_when_drained()

    def _shutdown_expired(self) -> None:
        """Close with events in hand: name each one a handler still runs.

        Claiming each running delivery makes its handler's late result void:
        the broker redelivers the event, nothing acks it twice.
        """
        released = 0
        for flight in self._flights:
            for key, entry in list(flight.running.items()):
                if flight.running.pop(key, None) is entry:
                    released += 1
                    self._released_unfinished(flight, entry[0])
                    if flight.asynchronous:  # a task can be stopped, unlike a thread
                        flight.pool.write_off(entry[3])
        self._close_once_settled(released, time.monotonic() + SETTLE_GRACE)

    def _close_once_settled(self, released: int, until: float) -> None:
        """Close once only the released deliveries are unsettled (or at ``until``).

        A handler that returned just before the deadline has claimed its
        delivery but may not have handed its ack over yet: closing now would
        send its event round again, unnamed. Waiting for the transport's
        count of unsettled deliveries to come down to the released ones
        (briefly: ``SETTLE_GRACE`` at most) lets that ack go out first.
        """
        if self.transport.outstanding() <= released or time.monotonic() >= until:
            self.transport.close()
            return
        self.transport.call_later(
            0.01, functools.partial(self._close_once_settled, released, until)
        )

    def _released_unfinished(self, flight: Flight, delivery: Delivery) -> None:
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
            flight.spec.name,
            self.shutdown_timeout,
            extra=event_fields(event_id, topic, flight.spec.name, attempt),
        )

    def _finish_stop_when_drained(self) -> None:
        if self.transport.outstanding() == 0:
            self.transport.close()

    def _watch(self, now: float) -> None:
        """The watchdog's check (its own thread): fail handlers past their limit,
        and name an async handler that blocks the event loop."""
        self._in_flight.watch(now, self._flights)
        if self._loop_watch is not None:
            self._loop_watch.check(time.monotonic())

    def _blocking(self, task: asyncio.Task[Any]) -> str | None:
        """Which handler ``task`` (running on the loop, which it blocks) is, if one of ours."""
        for flight in self._flights:
            for delivery, _, _, who in list(flight.running.values()):
                if task_of(who) is task:
                    return (
                        f"the handler of {flight.spec.name} ({flight.spec.handler}) "
                        f"on event {delivery.message.message_id}"
                    )
        return None

    # -- inside the app's event loop ----------------------------------------

    async def serve(self) -> None:
        """Consume in the running event loop until cancelled (``await hub.consume()``).

        ``async def`` handlers run as tasks on this loop; the connection (and
        any plain def handler) keeps its own threads, so the loop only ever
        runs handlers. Cancelling stops gracefully: events in hand finish
        within ``shutdown_timeout``, the rest are released (each named in a
        WARNING) and the cancellation goes on. A fatal error (a missing
        queue, refused credentials) is raised here.
        """
        loop = asyncio.get_running_loop()
        if not isinstance(self.loops, InlineLoops):
            self.loops.given = loop
        done: asyncio.Future[BaseException | None] = loop.create_future()

        def run() -> None:
            try:
                self.run()
                outcome: BaseException | None = None
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                outcome = exc
            loop.call_soon_threadsafe(_resolve, done, outcome)

        threading.Thread(target=run, name="hubbub-consumer", daemon=True).start()
        try:
            error = await asyncio.shield(done)
        except asyncio.CancelledError:
            self.stop()
            while not done.done():  # the stop is bounded by shutdown_timeout
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(done)
            error = done.result()
            if error is not None and not isinstance(error, ShutdownTimeoutError):
                log.error("the consumer stopped with an error: %s", error)
            raise
        if error is not None:
            raise error


def _resolve(done: asyncio.Future[BaseException | None], outcome: BaseException | None) -> None:
    if not done.done():
        done.set_result(outcome)


class _Events:
    """The worker as the transport's :class:`~hubbub.transport.base.ConsumerEvents`.

    Apart from :class:`Worker`, whose ``consuming`` is the public event
    that health checks and tests wait on.
    """

    def __init__(self, worker: Worker) -> None:
        self.connected = worker._on_connected
        self.consuming = worker._on_consuming
        self.delivered = worker._on_delivered
        self.disconnected = worker._on_disconnected
