"""The blocking side of the seam: a short-lived session for topology and admin work.

What ``topology apply/plan/destroy``, the ``hubbub dlq`` commands, ``hubbub
status``, the depth poller and the test clean-up need from a broker, and
nothing more: declare, bind, count, delete, and browse a queue while holding
what was read.

Contract of every implementation:

- **One thread.** A session and its readers belong to the thread that opened
  them; nothing runs in the background. Deliveries and heartbeats are
  handled only inside a call (:meth:`BrokerSession.pump` in particular), so a
  caller that waits between operations pumps instead of sleeping.
- **A refused operation does not kill the session.** The broker refuses by
  closing the channel the operation ran on; the session raises a
  :class:`~hubbub.transport.errors.RefusedError` (404
  :class:`~hubbub.transport.errors.NotFoundError`, 406
  :class:`~hubbub.transport.errors.PreconditionFailedError`, 403
  :class:`~hubbub.transport.errors.AccessRefusedError`) and the next
  operation runs on a fresh channel. A reader refused mid-way is closed
  (the broker gives back what it held). A lost connection raises
  :class:`~hubbub.transport.errors.ConnectionLostError` and the session is
  dead: open another.
- Everything is in hubbub's types (:mod:`hubbub.message`); no client type
  crosses this line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from hubbub.message import Delivery, Message

#: Where a reader starts in a stream: the first or last chunk, what comes next,
#: an offset, or the first chunk written at or after a time.
StreamOffset = int | datetime | Literal["first", "last", "next"]
#: The header each delivery from a stream carries: its offset.
STREAM_OFFSET = "x-stream-offset"


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """What a passive declare tells of a queue: ready messages (not unacked ones), consumers."""

    ready: int
    consumers: int


class QueueReader(Protocol):
    """One channel consuming with manual acks: what it received stays held until acked.

    Closing it (:meth:`release`) gives back every held message at once; it
    never rejects (requeues) one by one, never cancels its consumers first,
    so the broker puts back held and in-flight messages together, in queue
    order (see :mod:`hubbub.admin.browse` for why that matters).
    """

    def consume(
        self, queue: str, *, credit: int, tag: str, offset: StreamOffset | None = None
    ) -> None:
        """Start consumer ``tag`` on ``queue`` with ``credit`` unacked messages at most.

        ``offset``: ``queue`` is a stream, read from there (each delivery's
        :data:`STREAM_OFFSET` header says where it is); acks then only give
        credit back, nothing is ever removed from a stream.
        """
        ...

    def cancel(self, tag: str) -> None:
        """Stop consumer ``tag``; its held messages stay held."""
        ...

    def received(self) -> list[tuple[str, Delivery]]:
        """What arrived since the last call (consumer tag, delivery), in arrival order.

        Deliveries arrive during :meth:`BrokerSession.pump` (and any other call).
        """
        ...

    def ack(self, tag: int, *, multiple: bool = False) -> None:
        """Remove delivery ``tag`` (with ``multiple``: and every earlier one) for good."""
        ...

    def release(self, *, timeout: float) -> None:
        """Close the channel without cancelling or rejecting: the broker gives back all.

        Returns once the broker confirmed the close, or after ``timeout`` seconds.
        """
        ...

    @property
    def is_open(self) -> bool: ...


class BrokerSession(Protocol):
    """A blocking session on one broker connection (see the module docstring)."""

    @property
    def server_version(self) -> str | None:
        """The broker's product version (e.g. ``3.10.8``), when it says."""
        ...

    @property
    def cluster_name(self) -> str | None:
        """The broker's cluster name, when it says."""
        ...

    def declare_exchange(
        self, name: str, kind: str, *, arguments: Mapping[str, Any] | None = None
    ) -> None:
        """Declare a durable exchange (no change when it exists as asked; 406 otherwise)."""
        ...

    def declare_queue(self, name: str, *, arguments: Mapping[str, Any] | None = None) -> None:
        """Declare a durable queue (no change when it exists as asked; 406 otherwise)."""
        ...

    def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None: ...

    def unbind_queue(self, queue: str, exchange: str, routing_key: str) -> None: ...

    def bind_exchange(self, destination: str, source: str, routing_key: str) -> None: ...

    def unbind_exchange(self, destination: str, source: str, routing_key: str) -> None: ...

    def queue_counts(self, name: str) -> QueueCounts | None:
        """A passive declare: the queue's counts, None when it does not exist."""
        ...

    def exchange_exists(self, name: str) -> bool:
        """A passive declare of exchange ``name``."""
        ...

    def delete_queue(self, name: str) -> None:
        """Delete the queue with its messages (none: nothing happens)."""
        ...

    def delete_exchange(self, name: str) -> None:
        """Delete the exchange and its bindings (none: nothing happens)."""
        ...

    def reader(self) -> QueueReader:
        """A new channel to browse a queue with (see :class:`QueueReader`)."""
        ...

    def put(self, exchange: str, body: bytes) -> None:
        """Publish ``body`` (persistent, mandatory) and wait for the broker's confirm.

        Raises PublishError when the broker returns or refuses it.
        """
        ...

    def peek_message(self, queue: str) -> Message | None:
        """The message at the head of ``queue``, left there; None when empty or missing."""
        ...

    def peek(self, queue: str) -> bytes | None:
        """The body of the queue's first message, left in the queue (None: empty or no queue)."""
        ...

    def pump(self, seconds: float) -> None:
        """Handle I/O for ``seconds``: deliveries, heartbeats (instead of sleeping)."""
        ...

    def close(self) -> None:
        """Close the connection (the broker gives back what readers still hold); idempotent."""
        ...

    @property
    def is_open(self) -> bool: ...
