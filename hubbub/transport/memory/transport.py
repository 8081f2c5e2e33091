"""The in-memory :class:`~hubbub.transport.base.Transport`: a broker, its clock, its transports."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable

from hubbub.topology.layout import layout
from hubbub.topology.model import Topology
from hubbub.topology.plan import Plan, deletable_wait_queues, plan
from hubbub.transport.memory.broker import MemoryBroker
from hubbub.transport.memory.consumer import MemoryConsumerTransport
from hubbub.transport.memory.publisher import MemoryPublisherTransport


class MemoryTransport:
    """A :class:`MemoryBroker` on ``clock`` (default: the wall clock), and transports on it.

    Under the in-memory hub ``clock`` is a
    :class:`~hubbub.testing.clock.FakeClock`'s ``time``: TTLs expire, delays
    fall due and ``call_later`` callbacks fire when the test moves it, at
    :meth:`next_due` (:meth:`expire` dead-letters what expired; a
    consumer's next ``run`` fires its timers).
    """

    in_memory = True

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.broker = MemoryBroker(clock)
        self._consumers: weakref.WeakSet[MemoryConsumerTransport] = weakref.WeakSet()

    def publisher(self, *, name: str = "") -> MemoryPublisherTransport:
        return MemoryPublisherTransport(self.broker)

    def consumer(self, *, name: str = "") -> MemoryConsumerTransport:
        consumer = MemoryConsumerTransport(self.broker)
        self._consumers.add(consumer)
        return consumer

    def apply(self, topology: Topology) -> Plan | None:
        """Declare ``topology`` in memory (queues keep what they hold); no plan.

        As ``hubbub topology apply`` does, an old wait queue found empty and
        unbound (:func:`~hubbub.topology.plan.deletable_wait_queues`) is deleted.
        """
        drained = deletable_wait_queues(self.plan(topology))
        self.broker.declare(layout(topology))
        for name in drained:
            self.broker.delete_queue_if_empty(name)
        return None

    def plan(self, topology: Topology) -> Plan:
        """What :meth:`apply` would change in memory: the plan a real broker would show."""
        return plan(layout(topology), self.broker.observe(topology.names))

    def time(self) -> float:
        return self._clock()

    def next_due(self) -> float | None:
        """Epoch seconds of the next expiry or consumer timer, or None."""
        due = [self.broker.next_expiry(), *(c.next_due() for c in self._consumers)]
        return min((d for d in due if d is not None), default=None)

    def expire(self) -> int:
        """Dead-letter what expired by now (see :meth:`MemoryBroker.expire`)."""
        return self.broker.expire()
