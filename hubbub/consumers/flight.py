"""Deliveries in flight: handled on a handler thread or in a task, settled through the transport.

A delivery goes from the transport's thread to its subscriber's pool; a
handler thread (:meth:`InFlight.work`), or for an ``async def`` handler a
task on the worker's event loop (:meth:`InFlight.awork`), runs the handler
and decides its fate. ``ack``: the
transport acks it (coalesced with others). ``retry`` / ``dead-letter``: the
copy is published (:mod:`hubbub.consumers.copies`) and the original is acked
on the copy's confirm. A delivery of an older epoch (its connection is gone)
is never settled: the broker redelivers it. A handler past its time limit is
written off by the watchdog (:meth:`InFlight.watch`): its event fails like a
raised exception and a new thread takes its place.

Each running delivery has an entry in :attr:`Flight.running`; popping the
entry *claims* the delivery, so of the handler returning, the watchdog and
the shutdown timeout exactly one settles it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from hubbub.codecs import Codecs
from hubbub.consumers.copies import Copies, is_refusal, release_delay
from hubbub.consumers.dispatch import Dispatcher
from hubbub.consumers.handling import Handler, Outcome, ahandle, handle, timed_out
from hubbub.consumers.observer import Observer
from hubbub.consumers.tasks import InlineTasks, TaskPool, stack_of_task
from hubbub.consumers.watchdog import HandlerTimeoutError, stack_of
from hubbub.logs import event_fields
from hubbub.message import Delivery
from hubbub.topology.model import Subscriber
from hubbub.transport.base import ACK, REQUEUE, ConsumerTransport, Subscription

log = logging.getLogger("hubbub.consumers")

#: The epoch of a subscriber that does not consume (between connections).
IDLE = -1

_DONE = {
    "ack": "handled",
    "retry": "scheduled for retry",
    "dead-letter": "dead-lettered",
    "release": "released to its queue",
}

#: A running delivery: (delivery, epoch, start, who runs it: a handler thread's
#: ident, or an async handler's task).
Running = tuple[Delivery, int, float, Any]


class Inline:
    """A pool of no threads: handlers run on the caller's (the transport's) thread.

    For transports with no I/O to keep flowing while a handler runs (the
    in-memory one). A handler past its time limit is failed all the same,
    but its thread cannot be replaced.
    """

    threads = 1

    def submit(self, function: Callable[..., None], *args: object) -> None:
        function(*args)

    def write_off(self, ident: int) -> None:
        """Nothing to replace: the transport's thread is not the pool's."""

    def stuck(self) -> int:
        return 0

    def shutdown(self, timeout: float | None = None) -> int:
        return 0


@dataclass
class Flight:
    """One subscriber's deliveries in flight, and what it runs them with."""

    spec: Subscriber
    handler: Handler
    subscription: Subscription
    pool: Dispatcher | Inline | TaskPool | InlineTasks
    #: The epoch it consumes in (:data:`IDLE` between connections).
    epoch: int = IDLE
    #: Deliveries whose handler runs, by ``id(delivery)``.
    running: dict[int, Running] = field(default_factory=dict)
    copy_failures: int = 0  # copies failed in a row (the release backoff)
    #: Its handler is an ``async def``: its events run as tasks (:meth:`InFlight.awork`).
    asynchronous: bool = False

    @property
    def queue(self) -> str:
        return self.subscription.queue


class InFlight:
    """Runs and settles the deliveries of a worker's subscribers (any thread).

    ``stopping`` is the worker's: a delivery not started by then goes back
    to its queue. ``fail(reason)`` stops the worker (transport thread);
    ``settled`` runs on the transport thread after each settlement while
    stopping (to close once everything is settled). ``rng`` draws the retry
    jitter (a seeded one makes it repeatable: the in-memory hub's ``seed``);
    ``codecs`` decodes bodies by content type; ``awaiter`` runs to its end
    an awaitable that a plain def handler returned.
    """

    def __init__(
        self,
        transport: ConsumerTransport,
        copies: Copies,
        observer: Observer,
        *,
        stopping: threading.Event,
        fail: Callable[[str], None],
        settled: Callable[[], None],
        rng: random.Random | None = None,
        codecs: Codecs | None = None,
        awaiter: Callable[[Any], Any] | None = None,
    ) -> None:
        self.transport = transport
        self._awaiter = awaiter
        self.codecs = codecs
        self.copies = copies
        self.observer = observer
        self._stopping = stopping
        self._fail = fail
        self._settled = settled
        self._rng = rng

    def work(self, flight: Flight, epoch: int, delivery: Delivery) -> None:
        """On a handler thread: handle, then copy (retry, dead-letter) or hand over the ack."""
        if self._stopping.is_set() or epoch != flight.epoch:
            # not started: stopping, or its connection is gone
            self.hand_over(flight, epoch, delivery.tag, REQUEUE)
            return
        started = time.perf_counter()
        key, running = id(delivery), flight.running
        running[key] = (delivery, epoch, started, threading.get_ident())
        outcome = handle(
            flight.spec,
            flight.queue,
            flight.handler,
            delivery,
            self._rng,
            codecs=self.codecs,
            awaiter=self._awaiter,
        )
        if running.pop(key, None) is None:
            return  # written off past its time limit: settled without this late result
        self.decided(flight, epoch, delivery, outcome, started)

    async def awork(
        self, flight: Flight, epoch: int, delivery: Delivery, task: object = None
    ) -> None:
        """:meth:`work` for an ``async def`` handler, in a task on the worker's loop.

        The running entry holds the task (``task``, given by the pool, or
        the current one): past its time limit the watchdog cancels it. A
        cancellation that finds the delivery still claimed (the app's loop
        shutting down, say) releases the event and propagates.
        """
        if self._stopping.is_set() or epoch != flight.epoch:
            self.hand_over(flight, epoch, delivery.tag, REQUEUE)
            return
        started = time.perf_counter()
        key, running = id(delivery), flight.running
        running[key] = (delivery, epoch, started, task or asyncio.current_task())
        try:
            outcome = await ahandle(
                flight.spec, flight.queue, flight.handler, delivery, self._rng, codecs=self.codecs
            )
        except asyncio.CancelledError:
            if running.pop(key, None) is None:
                return  # written off (its time limit) or released (the shutdown timeout)
            self.hand_over(flight, epoch, delivery.tag, REQUEUE)
            raise
        if running.pop(key, None) is None:
            return
        self.decided(flight, epoch, delivery, outcome, started)

    def decided(
        self, flight: Flight, epoch: int, delivery: Delivery, outcome: Outcome, started: float
    ) -> None:
        """Carry out a handler's outcome: the ack, or the copy that settles it."""
        if outcome.action == "ack":
            self.finish(flight, epoch, delivery, outcome, started, None)
        else:
            self.copy(flight, epoch, delivery, outcome, started)

    def copy(
        self, flight: Flight, epoch: int, delivery: Delivery, outcome: Outcome, started: float
    ) -> None:
        """Publish the retry or dead-letter copy; the original settles on its confirm.

        The handler thread does not wait for the confirm: it goes on to the
        next delivery. The original stays unacked, and counted by the
        prefetch, until then.
        """
        done = partial(self.finish, flight, epoch, delivery, outcome, started)
        self.copies.send(flight.spec.name, delivery, outcome, done)

    def finish(
        self,
        flight: Flight,
        epoch: int,
        delivery: Delivery,
        outcome: Outcome,
        started: float,
        copy_error: BaseException | None,
    ) -> None:
        """Record the outcome and hand the verdict to the transport (any thread)."""
        if copy_error is not None:
            self.copy_failed(flight, epoch, delivery, outcome, copy_error)
            outcome = replace(outcome, action="release")
        elif outcome.action != "ack":
            flight.copy_failures = 0
        name = flight.spec.name
        self.observer.finished(name, outcome, time.perf_counter() - started)
        if log.isEnabledFor(logging.DEBUG):  # the fields cost more than a trivial handler
            log.debug(
                "event %s (%s) %s by %s on attempt %d",
                outcome.event_id,
                outcome.topic,
                _DONE[outcome.action],
                name,
                outcome.attempt,
                extra=event_fields(outcome.event_id, outcome.topic, name, outcome.attempt),
            )
        if copy_error is None:
            self.hand_over(flight, epoch, delivery.tag, ACK)

    def copy_failed(
        self,
        flight: Flight,
        epoch: int,
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
            self.transport.call_soon(
                partial(self._fail, self.copies.refused(flight.spec.name, outcome))
            )
            self.hand_over(flight, epoch, delivery.tag, REQUEUE)
            return
        flight.copy_failures += 1
        wait = release_delay(flight.copy_failures)
        log.error(
            "could not %s event %s from %s, releasing it to its queue in %.0fs: %s",
            outcome.action,
            outcome.event_id,
            flight.queue,
            wait,
            error,
        )
        release = partial(self.hand_over, flight, epoch, delivery.tag, REQUEUE)
        later = partial(self.transport.call_later, 0.0 if self._stopping.is_set() else wait)
        self.transport.call_soon(partial(later, release))

    def hand_over(self, flight: Flight, epoch: int, tag: int, ack: bool) -> None:
        """Settle delivery ``tag`` (any thread): the transport acks or requeues it."""
        self.observer.settled(flight.spec.name)
        self.transport.settle(flight.subscription, epoch, tag, ack)
        if self._stopping.is_set():
            self.transport.call_soon(self._settled)

    # -- time limits (the watchdog thread) ----------------------------------

    def watch(self, now: float, flights: list[Flight]) -> None:
        """Write off every handler running past its subscriber's time limit."""
        for flight in flights:
            limit = flight.spec.timeout
            for key, entry in list(flight.running.items()):
                if now - entry[2] > limit:
                    try:
                        self.write_off(flight, key, entry)
                    except Exception:  # the watchdog must keep watching
                        log.exception("could not fail a handler past its time limit")

    def write_off(self, flight: Flight, key: int, entry: Running) -> None:
        """Fail a delivery whose handler is past its limit; replace the stuck thread
        (or cancel the task).

        A thread is written off first: if its handler returns meanwhile, it
        loses the claim below to nobody (its own pop wins) and simply leaves
        its pool, where its replacement already runs. A task is cancelled only
        once the claim is taken: cancelled first, it could see its delivery
        still claimed and release it as a stop would, not fail it as timed out.
        """
        delivery, epoch, started, who = entry
        thread = isinstance(who, int)
        stack = stack_of(who) if thread else stack_of_task(who)
        if thread:
            flight.pool.write_off(who)
        if flight.running.pop(key, None) is not entry:
            return  # the handler returned just now: its own result stands
        if not thread:
            flight.pool.write_off(who)
        error = HandlerTimeoutError(flight.spec.timeout)
        outcome = timed_out(flight.spec, flight.queue, delivery, error, stack, codecs=self.codecs)
        name = flight.spec.name
        log.warning(
            "event %s (%s) %s in %s on attempt %d; its %s, %s",
            outcome.event_id,
            outcome.topic,
            error,
            name,
            outcome.attempt,
            "thread is written off and replaced" if isinstance(who, int) else "task is cancelled",
            f"retrying in {outcome.delay:.1f}s"
            if outcome.action == "retry"
            else "dead-lettering it",
            extra=event_fields(outcome.event_id, outcome.topic, name, outcome.attempt),
        )
        if epoch != flight.epoch:
            # Its connection is gone and the broker has redelivered it already:
            # no copy; the void hand-over only takes it out of flight (metrics).
            self.hand_over(flight, epoch, delivery.tag, REQUEUE)
            return
        self.copy(flight, epoch, delivery, outcome, started)
