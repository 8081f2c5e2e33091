"""An in-memory hub that behaves as the real one does, for fast app tests.

:class:`InMemoryHub` is a :class:`~hubbub.Hub` on the in-memory transport
(:mod:`hubbub.transport.memory`): the same constructor, the same
``@hub.subscriber`` decorators with the same "file wins" precedence, the
same ``publish``/``publish_many``/``apublish``. Underneath runs the real
code: messages are built by the real publisher, routed through the
bindings :func:`~hubbub.topology.layout.layout` declares (delay ladder
included) by a :class:`~hubbub.transport.memory.broker.MemoryBroker`, and
consumed by the real :class:`~hubbub.consumers.Worker` (handlers inline on
the caller's thread), whose handling (retry decisions, failure record,
causation ids), copies and acks are production's. The contract suite
(``tests/contract``) runs one set of behaviour tests against this hub and
the real broker so they cannot drift.

What differs, on purpose: nothing runs until the test says so.
:meth:`InMemoryHub.run_until_idle` runs the worker until nothing is ready:
subscribers take turns, one event each, until none is left; delayed events
and retries wait for the :class:`~hubbub.testing.clock.FakeClock`
(``hub.clock.advance(days=3)``), which stops at each moment something is due
and runs what became ready. Timestamps inside messages come from the wall
clock; only *when* things happen follows the fake clock.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from hubbub import current
from hubbub.admin import history
from hubbub.admin.records import FailedEvent, parse
from hubbub.admin.sources import ToSubscriber
from hubbub.codecs import Codecs
from hubbub.consumers.worker import Worker
from hubbub.errors import HubbubError
from hubbub.hub import Hub
from hubbub.inbox import InboxStore, MemoryStore
from hubbub.message import Message, Outbound
from hubbub.producers.publisher import Publisher
from hubbub.testing.clock import FakeClock
from hubbub.testing.records import Assertions, Recorder, RecordingTransport, Watch, replay_selection
from hubbub.topology import loader
from hubbub.topology.model import Topology
from hubbub.transport.memory import MemoryTransport, Queued

#: Deliveries one :meth:`InMemoryHub.run_until_idle` makes before it calls it a loop.
MAX_DELIVERIES = 10_000
#: Seconds a run waits for the watchdog to settle a delivery it wrote off.
SETTLE_WAIT = 2.0


class InMemoryHub(Hub, Assertions):
    """A hub with its broker in memory; see the module docstring. Not thread-safe.

    From construction until :meth:`close` (and under pytest at most until the
    test ends) it stands in for the broker: every other :class:`~hubbub.Hub`
    of the process publishes into it when it has the same name, and raises
    instead of connecting otherwise (:mod:`hubbub.current`). Handlers it runs
    publish into it with ``hubbub.publish``.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        topology: Topology | str | Path | None = None,
        url: str | None = None,
        clock: FakeClock | None = None,
        seed: int = 0,
        middleware: Sequence[Any] = (),
        codecs: Codecs | None = None,
        inbox: InboxStore | None = None,
    ) -> None:
        """``url`` is accepted and ignored (so code that builds a Hub can build this);
        ``seed`` makes retry jitter repeatable; ``middleware`` and ``codecs`` as
        :class:`~hubbub.Hub`'s (run in the caller's thread, as handlers are);
        ``inbox``: where ``idempotent`` subscribers record what they handled
        (default: a :class:`~hubbub.inbox.MemoryStore` of its own)."""
        self.clock = clock or FakeClock()
        self.memory = MemoryTransport(self.clock.time)
        self._recorder = Recorder(codecs)
        recording = RecordingTransport(self.memory, self._recorder)
        super().__init__(
            name,
            topology=topology,
            url=url,
            transport=recording,
            middleware=middleware,
            codecs=codecs,
            inbox=inbox if inbox is not None else MemoryStore(),
        )
        #: The broker in memory (its queues can be read: ``broker.messages(queue)``).
        self.broker = self.memory.broker
        self._watch = _Budget(self._recorder)
        self._rng = random.Random(seed)
        self._declared: Topology | None = None
        self._worker: Worker | None = None
        self.clock.attach(self)
        current.stand_in(self)

    @classmethod
    def from_file(cls, path: str | Path, *, url: str | None = None) -> InMemoryHub:
        return cls(topology=loader.load(path), url=url)

    # -- the Hub API ---------------------------------------------------------

    @property
    def publisher(self) -> Publisher:
        """The hub's publisher, on the in-memory transport; the topology is declared first
        (a subscriber decorated since the last publish gets its queue and bindings)."""
        self._declare()
        return super().publisher

    def worker(self, subscribers: Sequence[str] | None = None, **options: Any) -> Worker:
        raise HubbubError(
            "an in-memory hub runs handlers itself: call hub.run_until_idle() "
            "or hub.clock.advance(...) instead of starting a worker"
        )

    def close(self) -> None:
        """Stop standing in for the broker (other hubs may reach it again); the hub
        stays usable."""
        current.withdraw(self)

    # -- running ---------------------------------------------------------------

    def run_until_idle(self) -> int:
        """Handle every ready event (and those handlers publish) until none is left.

        Subscribers take turns, one event each, in topology order, so a run
        is repeatable. Delayed events and retries stay held until the clock
        reaches them. Returns the number of deliveries made.

        An ``async def`` handler's event runs to its end before the next
        (on a private event loop). In an async test, ``await
        hub.arun_until_idle()`` runs them on the test's own loop instead.
        """
        return self._run(None)

    async def arun_until_idle(self) -> int:
        """:meth:`run_until_idle` for async tests: async handlers run on the test's loop.

        Still one event at a time, in the same order: the run itself goes on
        a thread and hands each async handler's coroutine to this loop, so
        handlers may use what the test made on it (clients, locks, events).
        """
        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._run, loop)

    def _run(self, loop: asyncio.AbstractEventLoop | None) -> int:
        self._declare()
        current.stand_in(self)  # a hub kept across tests stands in again while it runs
        worker = self._current_worker()
        if worker is None:
            return 0
        before = self._watch.started_count()
        self._watch.budget = before + MAX_DELIVERIES
        worker.loops.given = loop
        try:
            worker.run()
            self._settle_written_off(worker)
        finally:
            worker.loops.given = None
        return self._watch.started_count() - before

    def _settle_written_off(self, worker: Worker) -> None:
        """Run again once the watchdog settled what it wrote off (on its own thread).

        A handler cancelled at its time limit returns to the run at once,
        while the watchdog's thread may still be making its event's retry
        copy: the run would end with that event neither settled nor recorded.
        This waits (briefly: nothing else settles off the run's thread) for
        deliveries in flight to settle, then runs again to carry it out.
        """
        deadline = time.monotonic() + SETTLE_WAIT
        seen = self._watch.in_flight()
        while seen and time.monotonic() < deadline:
            time.sleep(0.005)
            now = self._watch.in_flight()
            if now < seen:
                worker.run()
                seen = self._watch.in_flight()
                deadline = time.monotonic() + SETTLE_WAIT

    def advance(
        self,
        by: float | timedelta | str = 0,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> None:
        """``self.clock.advance(...)``: let time pass, running what falls due on the way."""
        self.clock.advance(by, days=days, hours=hours, minutes=minutes, seconds=seconds)

    def run_until(self, done: Callable[[], bool], *, within: float) -> None:
        """Run, moving the clock from one due moment to the next, until ``done()``.

        Raises AssertionError when ``done()`` is still false after ``within``
        seconds of (fake) time. The live hub has the same method on the wall clock.
        """
        deadline = self.clock.time() + within
        self.run_until_idle()
        while not done():
            due = self.next_due()
            if due is None or due > deadline:
                raise AssertionError(
                    f"not done within {within:g} s of hub time; attempts so far: {self.attempts()}"
                )
            self.clock.advance(max(0.0, due - self.clock.time()))

    def replay(self, subscriber: str, ids: Iterable[str] | None = None) -> int:
        """Send dead-lettered events back to ``subscriber`` alone, attempt count reset.

        ``ids`` picks events by id (default: all of its dead letters). The
        copies are made by the same code as ``hubbub dlq replay`` (into the
        subscriber's queue only, failure history kept). Returns how many were
        replayed; run the hub to handle them.
        """
        self._declare()
        selection = replay_selection(ids)
        if selection is None:
            return 0
        names = self.topology.names
        target = ToSubscriber(names.queue(subscriber))
        now_ms = int(self.clock.time() * 1000)

        def parsed(queued: Queued) -> FailedEvent:
            return parse(queued.routing_key, queued.message, subscriber=subscriber)

        taken = self.broker.take(
            names.dead_letter_queue(subscriber), lambda m: selection.matches(parsed(m))
        )
        for queued in taken:
            failed = parsed(queued)
            route = target.route(failed)
            assert not isinstance(route, str)  # a subscriber target always routes
            copy = history.replay_message(queued.message, failed, now_ms=now_ms)
            self.broker.publish(Outbound(*route, copy))
        return len(taken)

    # -- the clock calls these -------------------------------------------------

    def next_due(self) -> float | None:
        return self.memory.next_due()

    def on_time(self) -> None:
        self._declare()
        self.memory.expire()
        self.run_until_idle()

    # -- inside ------------------------------------------------------------------

    def _declare(self) -> None:
        topology = self.topology
        if topology is not self._declared:
            self.apply()
            self._declared = topology

    def _current_worker(self) -> Worker | None:
        """The worker of the current topology (a new one when the wiring changed)."""
        topology = self.topology
        worker = self._worker
        if worker is not None and worker.topology is topology:
            return worker
        if worker is not None:
            worker.transport.close()
        self._worker = None
        if not topology.subscribers:
            return None
        handlers = {
            name: self._recorder.spy(name, current.through(h, lambda: self))
            for name, h in self.handlers().items()
        }
        label = f"hubbub in-memory {self.name}"
        self._worker = Worker(
            topology,
            handlers,
            transport=self.memory.consumer(name=label),
            publisher=Publisher(  # the copies' publisher: unrecorded, as they are no events
                self.name,
                transport=self.memory.publisher(name=label),
                clock=self.memory.time,
                middleware=self.middleware,
                codecs=self.codecs,
            ),
            observer=self._watch,
            inline=True,
            rng=self._rng,
            name=label,
            middleware=self.middleware,
            codecs=self.codecs,
            inbox=self.inbox,
        )
        return self._worker

    def _messages(self, queue: str) -> list[tuple[str, Message]]:
        self._declare()
        return [(m.routing_key, m.message) for m in self.broker.messages(queue)]


class _Budget(Watch):
    """The hub's :class:`Watch`, stopping a run past its budget of deliveries."""

    budget = MAX_DELIVERIES

    def started(self, subscriber: str) -> None:
        super().started(subscriber)
        if self.started_count() > self.budget:
            raise HubbubError(
                f"{MAX_DELIVERIES} deliveries and the hub is still busy: handlers keep "
                "publishing events that trigger each other"
            )
