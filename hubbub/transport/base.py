"""The transport seam: what hubbub's Publisher and Worker need from a broker client.

Two small interfaces, in hubbub's own types (:mod:`hubbub.message`), so the
real :class:`~hubbub.producers.Publisher` and
:class:`~hubbub.consumers.Worker` run unchanged on RabbitMQ
(the RabbitMQ transport, the only package that imports a broker client) and in
memory (:mod:`hubbub.transport.memory`, for fast tests), and one
conformance suite (``tests/contract/test_transport_conformance.py``) holds
every implementation to the same contract.

- :class:`PublisherTransport`: confirmed publishing. Every
  :class:`Pending` handed over is settled exactly once: confirmed, or failed
  with the reason (a nack, a closed channel, a lost connection). It
  reconnects by itself on the next send after a loss, trying the other nodes
  first; it never retries a message (the publisher's caller decides).
- :class:`Transport`: what a :class:`~hubbub.Hub` is built on. It makes
  the two below (one per publisher, one per worker), declares a topology,
  and tells the time its broker goes by: RabbitMQ
  (:class:`~hubbub.transport.rabbitmq.RabbitMQTransport`) or memory
  (:class:`~hubbub.transport.memory.MemoryTransport`, whose clock may be a
  test's fake one).
- :class:`ConsumerTransport`: consuming with manual acks. It runs its
  connection on the thread that calls :meth:`ConsumerTransport.run`, hands
  each delivery to the worker's :class:`ConsumerEvents` on that thread, and
  takes settlements (ack, requeue) from any thread, coalescing them. A lost
  connection voids every delivery it carried (the broker redelivers them):
  each connection is one *epoch*, and a settlement of an older epoch is
  dropped. It reconnects with capped exponential backoff, round robin over
  the nodes, until :meth:`ConsumerTransport.close`.

Connection-level failures the caller cannot recover from (wrong
credentials, no such virtual host, a queue that does not exist or was
deleted while consumed) are raised from ``run`` / ``send_many`` as
:class:`~hubbub.errors.HubbubError` with the fix in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hubbub.message import Delivery, Outbound

if TYPE_CHECKING:
    from hubbub.topology.model import Topology
    from hubbub.topology.plan import Plan

#: What a worker asks of a delivery once its fate is decided.
ACK, REQUEUE = True, False


class Confirms(Protocol):
    """Who waits for the confirms of many messages, each known by its ``index``.

    Both methods are called from the transport's thread (its I/O thread, or
    the sender's for an in-memory transport), so both must be thread-safe:
    :class:`~hubbub.transport.confirms.ConfirmGroup` (a thread waiting for a
    batch) and :class:`~hubbub.producers.aio.LoopSender` (an event loop's
    ``apublish`` calls) are the two.
    """

    def claim(self, index: int) -> bool:
        """Message ``index`` is about to be sent: False if its sender withdrew it."""
        ...

    def settle(self, index: int, error: BaseException | None) -> None:
        """Message ``index`` was confirmed (``error`` None), or failed."""
        ...


@dataclass(slots=True)
class Pending:
    """A message handed to a publisher transport, and who waits for its confirm.

    Either ``future`` resolves on the confirm (one message), or ``group``
    hears of it at position ``index`` (many messages, see :class:`Confirms`),
    or neither (nobody waits). Only the transport settles a message once it
    took it; :meth:`settle` makes a second outcome (a nack after a return, a
    channel closing) a no-op.
    """

    outbound: Outbound
    future: Future[None] | None = None
    group: Confirms | None = None
    index: int = 0
    settled: bool = False

    def claim(self) -> bool:
        """Take the message for sending; False if its sender withdrew it (cancelled)."""
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        return self.group is None or self.group.claim(self.index)

    def settle(self, error: BaseException | None) -> None:
        """Record the outcome: confirmed (``error`` None) or failed."""
        if self.settled:
            return
        self.settled = True
        future = self.future
        if future is not None and not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        if self.group is not None:
            self.group.settle(self.index, error)


class PublisherTransport(Protocol):
    """Confirmed publishing to one broker (or cluster); safe to share between threads."""

    def send_many(self, pending: Sequence[Pending]) -> None:
        """Hand ``pending`` over in order; each is settled on its confirm (or failure).

        Connects first when no connection is live (blocking, nodes in turn);
        raises :class:`~hubbub.errors.BrokerConnectionError` when none can be
        reached, and then nothing of ``pending`` was sent or settled.
        """
        ...

    def connect(self) -> None:
        """Open a connection now unless one is live (what ``send_many`` does first).

        Blocking: asyncio callers run it in an executor.
        """
        ...

    @property
    def live(self) -> bool:
        """True while a connection is open (a send will not block to connect)."""
        ...

    @property
    def blocked(self) -> str | None:
        """Why the broker blocks publishes (a resource alarm), None while it does not."""
        ...

    def close(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` s for in-flight confirms, then close (0: at once).

        What is still unconfirmed then fails (stored or not). The transport
        may be used again: the next send reconnects.
        """
        ...


@dataclass(frozen=True, slots=True)
class Subscription:
    """One queue a worker consumes: its position in the worker's list, and its prefetch.

    ``timeout``: the handlers' time limit in seconds (None: none), which a
    transport names when the broker gives up on an unacked delivery.
    """

    index: int
    queue: str
    prefetch: int
    timeout: float | None = None


class ConsumerEvents(Protocol):
    """What a consumer transport tells its worker, always on the transport's own thread."""

    def connected(self, node: str) -> None:
        """A connection opened, to ``node`` (``host:port``); consumers start next."""
        ...

    def consuming(self, subscription: Subscription, epoch: int) -> None:
        """``subscription`` consumes again, in connection ``epoch``."""
        ...

    def delivered(self, subscription: Subscription, epoch: int, delivery: Delivery) -> None:
        """A delivery arrived; settle it with :meth:`ConsumerTransport.settle`."""
        ...

    def disconnected(self) -> None:
        """The connection closed: every unsettled delivery of its epoch is void."""
        ...


class ConsumerTransport(Protocol):
    """Consuming with manual acks on a connection run by the :meth:`run` thread."""

    def preflight(
        self, subscriptions: Sequence[Subscription], copy_exchanges: Sequence[str]
    ) -> None:
        """Check, before consuming, that the queues may be read and the copies written.

        Raises :class:`~hubbub.errors.HubbubError` naming the missing grant
        (a worker that could not retry or dead-letter would redeliver forever).
        """
        ...

    def run(self, subscriptions: Sequence[Subscription], events: ConsumerEvents) -> None:
        """Consume until :meth:`close`, reconnecting on loss; raises fatal errors.

        An in-memory transport may also return once nothing is left to deliver.
        """
        ...

    def settle(self, subscription: Subscription, epoch: int, tag: int, ack: bool) -> None:
        """Ack (``ack`` True) or requeue delivery ``tag`` (any thread; coalesced).

        Dropped when ``epoch`` is not the current one (the broker redelivers it).
        """
        ...

    def outstanding(self) -> int:
        """Deliveries of the current epoch not settled yet (transport thread)."""
        ...

    def cancel(self) -> None:
        """Stop every consumer: no new delivery; held ones stay held (transport thread)."""
        ...

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the transport's thread (from any thread; dropped if closed)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the transport's thread after ``delay`` s (transport thread)."""
        ...

    def responsive(self, timeout: float) -> bool:
        """True when the transport's thread runs a posted callback within ``timeout`` s."""
        ...

    def close(self) -> None:
        """Close the connection and make :meth:`run` return (any thread; idempotent)."""
        ...


class Transport(Protocol):
    """A broker as a hub sees it: a factory of transports, and its topology's keeper.

    Thread-safe. Each call of :meth:`publisher` or :meth:`consumer` makes a
    new transport (its own connection, for RabbitMQ) labelled ``name``.
    """

    #: True when the broker lives in this process (nothing outside is reached).
    in_memory: bool

    def publisher(self, *, name: str) -> PublisherTransport:
        """A new publisher transport (connecting on its first send)."""
        ...

    def consumer(self, *, name: str) -> ConsumerTransport:
        """A new consumer transport (connecting in its ``run``)."""
        ...

    def apply(self, topology: Topology) -> Plan | None:
        """Declare ``topology`` (idempotent); the plan carried out, if the broker makes one."""
        ...

    def plan(self, topology: Topology) -> Plan:
        """What :meth:`apply` would change; raises HubbubError where there is no plan."""
        ...

    def time(self) -> float:
        """Now, in epoch seconds, as the broker's clock has it (``deliver_at`` counts from it)."""
        ...


__all__ = [
    "ACK",
    "REQUEUE",
    "Confirms",
    "ConsumerEvents",
    "ConsumerTransport",
    "Pending",
    "PublisherTransport",
    "Subscription",
    "Transport",
]
