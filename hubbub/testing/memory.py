"""An in-memory hub that behaves as the real one does, for fast app tests.

:class:`InMemoryHub` is a :class:`~hubbub.Hub`: the same constructor, the
same ``@hub.subscriber`` decorators with the same "file wins" precedence,
the same ``publish``/``publish_many``/``apublish``. Underneath it runs the
real code wherever the real hub has code: messages are built by
:mod:`hubbub.producers.message`, routed through the bindings
:func:`~hubbub.topology.layout.layout` declares (delay ladder included) by a
:class:`~hubbub.testing.fake_broker.FakeBroker`, handled by
:func:`hubbub.consumers.handling.handle` (retry decisions, failure record,
causation ids), and their retry or dead-letter copies go where
:func:`~hubbub.consumers.handling.copy_destination` says. The contract suite
(``tests/contract``) runs one set of behaviour tests against this hub and
the real broker so they cannot drift.

What differs, on purpose: nothing runs until the test says so.
:meth:`InMemoryHub.run_until_idle` hands every ready event to its handlers,
one at a time, subscribers in turn, until none is left; delayed events and
retries wait for the :class:`~hubbub.testing.clock.FakeClock`
(``hub.clock.advance(days=3)``), which stops at each moment something is due
and runs what became ready. Timestamps inside messages come from the wall
clock; only *when* things happen follows the fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubbub import current
from hubbub.admin import history
from hubbub.admin.records import FailedEvent, parse
from hubbub.admin.sources import ToSubscriber
from hubbub.codecs import Codecs
from hubbub.consumers.handling import Handler, copy_destination, handle
from hubbub.consumers.worker import Worker
from hubbub.errors import HubbubError, PublishError
from hubbub.hub import Hub
from hubbub.message import Message, Outbound, new_delivery
from hubbub.middleware import consuming
from hubbub.producers.message import OutgoingEvent, PublishOptions
from hubbub.producers.publisher import Publisher
from hubbub.testing.clock import FakeClock
from hubbub.testing.fake_broker import FakeBroker, Queued
from hubbub.testing.records import Assertions, Recorder, replay_selection
from hubbub.topology import loader
from hubbub.topology.layout import layout
from hubbub.topology.model import Topology
from hubbub.topology.plan import Plan
from hubbub.transport.base import Pending

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Deliveries one :meth:`InMemoryHub.run_until_idle` makes before it calls it a loop.
MAX_DELIVERIES = 10_000


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
    ) -> None:
        """``url`` is accepted and ignored (so code that builds a Hub can build this);
        ``seed`` makes retry jitter repeatable; ``middleware`` and ``codecs`` as
        :class:`~hubbub.Hub`'s (run in the caller's thread, as handlers are)."""
        super().__init__(name, topology=topology, url=url, middleware=middleware, codecs=codecs)
        self.clock = clock or FakeClock()
        self.broker = FakeBroker(self.clock.time)
        self._recorder = Recorder(self.codecs)
        self._rng = random.Random(seed)
        self._memory_publisher = _MemoryPublisher(self)
        self._declared: Topology | None = None
        self._tags = 0
        self.clock.attach(self)
        current.stand_in(self)

    @classmethod
    def from_file(cls, path: str | Path, *, url: str | None = None) -> InMemoryHub:
        return cls(topology=loader.load(path), url=url)

    # -- the Hub API ---------------------------------------------------------

    @property
    def publisher(self) -> Publisher:
        return self._memory_publisher

    def apply(self) -> Plan | None:
        """Declare the topology in memory (publishing and running do it too)."""
        self._declare()
        return None

    def plan(self) -> Plan:
        raise HubbubError("an in-memory hub has no broker to plan against; use a real Hub")

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
        """
        self._declare()
        current.stand_in(self)  # a hub kept across tests stands in again while it runs
        handlers = {
            name: consuming(self.middleware, self._recorder.spy(name, h))
            for name, h in self.handlers().items()
        }
        names = self.topology.names
        delivered = 0
        while True:
            progressed = False
            for sub in self.topology.subscribers:
                message = self.broker.get(names.queue(sub.name))
                if message is None:
                    continue
                self._deliver(sub.name, handlers[sub.name], message)
                delivered += 1
                progressed = True
            if not progressed:
                return delivered
            if delivered >= MAX_DELIVERIES:
                raise HubbubError(
                    f"{delivered} deliveries and the hub is still busy: handlers keep "
                    "publishing events that trigger each other"
                )

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
        return self.broker.next_expiry()

    def on_time(self) -> None:
        self._declare()
        self.broker.expire()
        self.run_until_idle()

    # -- inside ------------------------------------------------------------------

    def _declare(self) -> None:
        topology = self.topology
        if topology is not self._declared:
            self.broker.declare(layout(topology))
            self._declared = topology

    def _deliver(self, subscriber: str, handler: Handler, queued: Queued) -> None:
        self._tags += 1
        delivery = new_delivery(
            self._tags, queued.exchange, queued.routing_key, queued.redelivered, queued.message
        )
        spec = self.topology.subscriber(subscriber)
        queue = self.topology.names.queue(subscriber)
        with current.publishing_through(self):
            outcome = handle(spec, queue, handler, delivery, self._rng, codecs=self.codecs)
        if outcome.action in ("retry", "dead-letter"):
            exchange, key = copy_destination(self.topology.names, subscriber, outcome)
            copy = queued.message.republished(outcome.headers)
            self.broker.publish(Outbound(exchange, key, copy))
        self._recorder.finished(subscriber, outcome)

    def _messages(self, queue: str) -> list[tuple[str, Message]]:
        self._declare()
        return [(m.routing_key, m.message) for m in self.broker.messages(queue)]


class _MemoryPublisher(Publisher):
    """The real Publisher's message building, with the fake broker in place of a link."""

    def __init__(self, hub: InMemoryHub) -> None:
        super().__init__(
            hub.name,
            url="amqp://in-memory/",
            name="hubbub in-memory",
            middleware=hub.middleware,
            codecs=hub.codecs,
        )
        self._hub = hub

    def publish(self, topic: str, data: Any = None, **options: Unpack[PublishOptions]) -> str:
        options["delay"], options["deliver_at"] = self._on_fake_clock(
            options.get("delay"), options.get("deliver_at")
        )
        return super().publish(topic, data, **options)

    async def apublish(
        self, topic: str, data: Any = None, **options: Unpack[PublishOptions]
    ) -> str:
        options["delay"], options["deliver_at"] = self._on_fake_clock(
            options.get("delay"), options.get("deliver_at")
        )
        return await super().apublish(topic, data, **options)

    def _prepare(self, events: Iterable[OutgoingEvent]) -> list[tuple[str, Outbound]]:
        """``publish_many``'s events, their ``deliver_at`` read on the fake clock."""
        return super()._prepare(
            replace(event, delay=delay, deliver_at=deliver_at)
            for event in events
            for delay, deliver_at in [self._on_fake_clock(event.delay, event.deliver_at)]
        )

    def _publish_one(self, message: Outbound) -> None:
        """``publish``'s message, through the fake broker (confirmed at once)."""
        self.wait(self.send(message))

    def _send_all(self, messages: Sequence[Pending]) -> None:
        """``publish_many``'s messages, each through the fake broker (confirmed at once)."""
        for m in messages:
            m.settle(self.send(m.outbound).exception())

    def send(self, outbound: Outbound) -> Future[None]:
        future: Future[None] = Future()
        self._hub._declare()
        try:
            self._hub.broker.publish(outbound)
        except PublishError as exc:
            future.set_exception(exc)
            return future
        self._hub._recorder.sent(outbound.routing_key, outbound.message)
        future.set_result(None)
        return future

    async def asend(self, outbound: Outbound) -> None:
        self.wait(self.send(outbound))

    def close(self) -> None:
        """Nothing to close."""

    def _on_fake_clock(
        self, delay: float | timedelta | str | None, deliver_at: datetime | None
    ) -> tuple[float | timedelta | str | None, datetime | None]:
        """``deliver_at`` as a delay from the fake clock's now (the real one uses the wall's)."""
        if deliver_at is None or delay is not None or deliver_at.tzinfo is None:
            return delay, deliver_at  # the real checks report these
        return max(0.0, (deliver_at - self._hub.clock.now()).total_seconds()), None
