"""Consuming from a :class:`~hubbub.transport.memory.broker.MemoryBroker`, deterministically.

The in-memory :class:`~hubbub.transport.base.ConsumerTransport`. Its
"connection" runs on the thread that calls :meth:`MemoryConsumerTransport.run`,
which works in rounds until nothing is left to do, then **returns** (the
protocol lets an in-memory transport do so): settlements first (in the order
they came), then posted callbacks, then the timers due on the broker's clock,
then one delivery per subscription in turn (each within its prefetch). So
a run is repeatable: the same messages and the same settlements give the
same deliveries in the same order. A timer set with ``call_later`` waits for
the clock (a :class:`~hubbub.testing.clock.FakeClock` under the in-memory
hub): :meth:`MemoryConsumerTransport.next_due` says when, and the next
``run`` fires it.

Idle means: nothing posted, settled or due, nothing deliverable (queues
empty, prefetch full, or consumers cancelled). Deliveries still outstanding
then stay held, in the same epoch: settlements that come later (from
another thread, or a timer) are applied by the next ``run``.

The connection stays open across runs (one epoch) until :meth:`close`, or
:meth:`interrupt`, which loses it as a network cut would: held deliveries
go back to their queues marked ``redelivered``, the worker is told
(``disconnected``), and the next round connects again in a new epoch, where
a settlement of the old one is dropped.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence

from hubbub.errors import HubbubError
from hubbub.message import new_delivery
from hubbub.transport.base import ConsumerEvents, Subscription
from hubbub.transport.errors import CopyTargetError
from hubbub.transport.memory.broker import MemoryBroker

#: What the transport calls the node it is "connected" to.
NODE = "memory"


class MemoryConsumerTransport:
    """A consumer transport on ``broker``; see the module docstring."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self._lock = threading.Lock()
        # Guarded by _lock (any thread):
        self._posted: deque[Callable[[], None]] = deque()
        self._settled: list[tuple[Subscription, int, int, bool]] = []
        self._closing = False
        self._lost = False
        self._runner: int | None = None  # the thread inside run()
        self._events: ConsumerEvents | None = None
        # The run thread's own:
        self._epoch = 0
        self._open = False
        self._subscriptions: tuple[Subscription, ...] = ()
        self._consuming: list[Subscription] = []
        self._held: dict[tuple[int, int], int] = {}  # (subscription, tag) -> broker tag
        self._in_hand: dict[int, int] = {}  # subscription -> deliveries held
        self._tags: dict[int, int] = {}  # subscription -> last tag of this epoch
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    # -- the protocol ----------------------------------------------------------

    def preflight(
        self, subscriptions: Sequence[Subscription], copy_exchanges: Sequence[str]
    ) -> None:
        """The queues and the copy exchanges must be declared (memory has no permissions)."""
        self._check_queues(subscriptions)
        missing = [e for e in copy_exchanges if not self.broker.has_exchange(e)]
        if missing:
            raise CopyTargetError(
                f"exchange {missing[0]!r} is not declared in memory: apply the topology first",
                missing=missing,
                refused=[],
            )

    def run(self, subscriptions: Sequence[Subscription], events: ConsumerEvents) -> None:
        """Deliver until idle or :meth:`close`, then return (see the module docstring)."""
        self._check_queues(subscriptions)
        with self._lock:
            self._runner, self._events = threading.get_ident(), events
            self._closing = False
        try:
            if tuple(subscriptions) != self._subscriptions:
                self._disconnect()
            while True:
                if self._closing:
                    self._disconnect()
                    return
                if self._lost:
                    self._lost = False
                    self._disconnect()
                if not self._open:
                    self._connect(subscriptions, events)
                if not self._round(events):
                    return
        finally:
            with self._lock:
                self._runner = None

    def settle(self, subscription: Subscription, epoch: int, tag: int, ack: bool) -> None:
        with self._lock:
            self._settled.append((subscription, epoch, tag, ack))

    def outstanding(self) -> int:
        return len(self._held)

    def cancel(self) -> None:
        self._consuming = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self._closing:
                self._posted.append(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the broker's clock reaches now + ``delay``."""
        due = self.broker.time() + delay
        heapq.heappush(self._timers, (due, next(self._order), callback))

    def responsive(self, timeout: float) -> bool:
        """True inside :meth:`run` (on its thread, or answering within ``timeout``)."""
        runner = self._runner
        if runner is None:
            return False
        if runner == threading.get_ident():
            return True
        answered = threading.Event()
        self.call_soon(answered.set)
        return answered.wait(timeout)

    def close(self) -> None:
        """End the connection (its held deliveries go back); :meth:`run` returns."""
        with self._lock:
            self._closing = True
            running = self._runner is not None
        if not running:  # nobody runs the connection: end it here
            self._disconnect()

    # -- beyond the protocol -----------------------------------------------------

    def interrupt(self) -> None:
        """Lose the connection as a network cut would (any thread; see the module docstring)."""
        self._lost = True

    def next_due(self) -> float | None:
        """Epoch seconds of the earliest ``call_later`` callback, or None."""
        return self._timers[0][0] if self._timers else None

    @property
    def epoch(self) -> int:
        """The current connection's epoch (0 before the first)."""
        return self._epoch

    # -- the run thread ------------------------------------------------------------

    def _check_queues(self, subscriptions: Sequence[Subscription]) -> None:
        missing = [s.queue for s in subscriptions if not self.broker.has_queue(s.queue)]
        if missing:
            raise HubbubError(
                f"queue {missing[0]!r} does not exist in memory: apply the topology "
                "first (hub.apply())"
            )

    def _connect(self, subscriptions: Sequence[Subscription], events: ConsumerEvents) -> None:
        self._epoch += 1
        self._open = True
        self._subscriptions = tuple(subscriptions)
        self._consuming = list(subscriptions)
        self._tags = {s.index: 0 for s in subscriptions}
        self._in_hand = {s.index: 0 for s in subscriptions}
        events.connected(NODE)
        for subscription in subscriptions:
            events.consuming(subscription, self._epoch)

    def _disconnect(self) -> None:
        """End the current connection: held deliveries go back, pending work is void."""
        if not self._open:
            return
        self._open = False
        self.broker.requeue(list(self._held.values()))
        self._held.clear()
        self._consuming = []
        self._timers.clear()
        with self._lock:
            self._posted.clear()
            self._settled.clear()
            events = self._events
        if events is not None:
            events.disconnected()

    def _round(self, events: ConsumerEvents) -> bool:
        """One round of work (see the module docstring); False when there was none."""
        with self._lock:
            settled, self._settled = self._settled, []
            posted = list(self._posted)
            self._posted.clear()
        for subscription, epoch, tag, ack in settled:
            self._apply(subscription.index, epoch, tag, ack)
        for callback in posted:
            callback()
        due = self._due()
        for callback in due:
            callback()
        return bool(settled or posted or due) | self._deliver(events)

    def _apply(self, index: int, epoch: int, tag: int, ack: bool) -> None:
        if epoch != self._epoch or not self._open:
            return  # its connection is gone: the broker has it back already
        broker_tag = self._held.pop((index, tag), None)
        if broker_tag is None:
            return  # settled before: a delivery is settled once
        self._in_hand[index] -= 1
        if ack:
            self.broker.ack(broker_tag)
        else:
            self.broker.requeue([broker_tag])

    def _due(self) -> list[Callable[[], None]]:
        now, due = self.broker.time(), []
        while self._timers and self._timers[0][0] <= now:
            due.append(heapq.heappop(self._timers)[2])
        return due

    def _deliver(self, events: ConsumerEvents) -> bool:
        """At most one delivery per consuming subscription, in their order."""
        delivered = False
        for subscription in list(self._consuming):
            index = subscription.index
            if self._in_hand[index] >= subscription.prefetch:
                continue
            taken = self.broker.deliver(subscription.queue)
            if taken is None:
                continue
            broker_tag, queued = taken
            tag = self._tags[index] = self._tags[index] + 1
            self._held[(index, tag)] = broker_tag
            self._in_hand[index] += 1
            delivery = new_delivery(
                tag, queued.exchange, queued.routing_key, queued.redelivered, queued.message
            )
            events.delivered(subscription, self._epoch, delivery)
            delivered = True
        return delivered
