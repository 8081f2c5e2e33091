"""Read a queue from head to tail without removing, losing or reordering its messages.

AMQP has no "peek". A browser therefore consumes with manual acks, keeps
every message it does not remove *unacked*, and closes its channel: the
broker puts every unacked message back. What follows was checked on
RabbitMQ 3.10.8 and 4.0.5 (quorum queues), not assumed:

- a message given back (by a requeue or a closed channel) goes to the
  queue's *returns* list, which is delivered before the other messages, and
  at its *tail*; it is then delivered ``redelivered``. So a browser never
  requeues as it goes (it would read the same message forever). And a
  browse that stops early must not give back its head while unread
  messages wait in the returns list (after any earlier browse, all of
  them do): the head would go behind them, for good. So
  :meth:`Browser.close` finishes the pass unless the last message read was
  not redelivered, which proves the returns list was empty behind it;
- messages the broker already sent when the channel closes, but the
  client had not received, go back *behind* the rest of the queue. So
  before closing, a browser receives everything sent to its consumer, and
  it opens a consumer only when it needs more messages;
- a message sent to the browser but still in flight when its channel
  closes may go back *ahead* of the held ones on RabbitMQ 4.0.5 (3.10.8:
  behind): seen with the Python client's blocking ``channel.close``, which
  cancels the consumer and rejects such a message on its own, and still, more rarely,
  with a plain ``channel.close`` when the message reached the broker's
  channel at the close. Events that arrive during the browse, past the
  snapshot, were such messages. So a consumer's credit never reaches past
  the snapshot (the broker never sends them), an ack waits until its
  consumer was sent its whole credit and is cancelled (an ack frees credit,
  :meth:`Browser._freeze`), and the channel is closed without cancelling or
  rejecting anything (:meth:`Browser._close_channel`);
- a quorum-queue consumer gets at most 2000 messages with ``prefetch=0`` and
  at most 65535 (``prefetch`` is 16 bits), so a pass opens consumers one
  after the other (:data:`CHUNKS`), cancelling each once it holds its
  credit in full, so each holds one contiguous stretch of the queue;
- when the channel closes the broker gives back each consumer's messages in
  queue order, and the consumers in tag order, but only while the queue has
  at most 32 consumers (:data:`MAX_CONSUMERS`; past that its consumer map is
  hashed and the order is lost). A pass stops there (about 2 million
  messages) and says so (:attr:`Browser.truncated`);
- the messages come back shortly *after* the channel closed;
  :meth:`Browser.close` waits until the queue's depth shows them, so the
  next command reads the queue in its original order.

Each return counts as a delivery (``x-delivery-count``); a dead-letter queue
with a delivery limit would drop messages after a few reads, which
:mod:`hubbub.admin.guard` prevents.

A pass reads the messages that were ready when it began (a snapshot of the
depth); events dead-lettered meanwhile wait behind them for the next
command. If the process dies, the connection drops and the broker gives
back every unacked message: nothing is lost, though the part read may then
move behind the part not yet read.

Not thread-safe: one thread owns a browser.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from hubbub.admin import access, records
from hubbub.admin.records import FailedEvent
from hubbub.errors import BrokerConnectionError, HubbubError
from hubbub.message import Delivery, Message
from hubbub.topology.permissions import Permissions
from hubbub.transport import (
    AccessRefusedError,
    BrokerSession,
    ConnectionLostError,
    QueueReader,
    RefusedError,
    open_session,
)

log = logging.getLogger(__name__)

#: Credit of each successive consumer of a pass; the last size repeats. The
#: broker reads a consumer's whole credit from its log before the first
#: delivery (seconds for 65535 messages), so the first ones are small.
CHUNKS = (1000, 10000, 65535)
#: Consumers one scan may open (RabbitMQ returns messages in order up to 32).
MAX_CONSUMERS = 32
#: Seconds without a delivery after which a pass ends early: the messages counted
#: at the start are gone (someone else took them). Generous: a busy broker may
#: take seconds to start delivering a large credit.
IDLE_TIMEOUT = 30.0
#: Seconds :meth:`Browser.close` waits for the broker to put messages back.
SETTLE_TIMEOUT = 5.0


class QueueNotFoundError(HubbubError):
    """The queue to browse does not exist."""


class QueueBusyError(HubbubError):
    """Someone else consumes from the queue, so a browse would miss part of it."""


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """One message as read, still in the queue until :meth:`Browser.ack`."""

    tag: int
    consumer: str
    position: int
    exchange: str
    routing_key: str
    redelivered: bool
    message: Message

    @property
    def body(self) -> bytes:
        return self.message.body


class Browser:
    """One scan of one queue; use as a context manager (closing returns what is not acked)."""

    def __init__(
        self,
        urls: Sequence[str],
        queue: str,
        *,
        name: str = "hubbub browse",
        chunks: Sequence[int] = CHUNKS,
        idle_timeout: float = IDLE_TIMEOUT,
        grant: Permissions | None = None,
    ) -> None:
        """``grant``: the permissions to suggest when the broker refuses to let us read."""
        if not chunks or any(not 0 < c <= 65535 for c in chunks):
            raise ValueError("chunks must be 1..65535")
        self.queue = queue
        self._urls = list(urls)
        self._name = name
        self._chunks = list(chunks)
        self._idle = idle_timeout
        self._grant = grant
        self._session: BrokerSession | None = None
        self._reader: QueueReader | None = None
        self._buffer: deque[tuple[str, Delivery]] = deque()
        self._holding: dict[str, int] = {}
        self._credit: dict[str, int] = {}
        self._received: dict[str, int] = {}
        self._active: str | None = None
        self._started = False
        self._last_redelivered: bool | None = None
        #: The broker's version, once open (e.g. ``3.10.8``).
        self.server_version: str | None = None
        #: Messages ready when the scan began: it reads at most these.
        self.depth = 0
        #: Messages read so far, and removed (acked) so far.
        self.seen = 0
        self.acked = 0
        #: True when the scan stopped at :data:`MAX_CONSUMERS` before the end of the queue.
        self.truncated = False

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> Browser:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        # Finish the pass unless interrupted (Ctrl-C): keeping order is worth a
        # few seconds, not a user's patience.
        self.close(finish=kind is None or issubclass(kind, Exception))

    def open(self) -> None:
        """Connect and take the snapshot; raises if the queue is missing or consumed."""
        self._session = open_session(self._urls, name=self._name)
        self.server_version = self._session.server_version
        try:
            self.depth, consumers = self._declare_passive()
            if consumers:
                raise QueueBusyError(
                    f"queue {self.queue!r} has {consumers} consumer(s) (another hubbub dlq "
                    "command, or an application reading it): a browse would miss the "
                    "messages they hold. Try again when they are gone"
                )
            self._reader = self._session.reader()
        except BaseException:
            self._disconnect()
            raise

    def close(self, *, finish: bool = True) -> None:
        """Give back every message not acked (reading to the end first if order needs it).

        ``finish=False`` never reads the rest: faster, but the part already
        read may then move behind the part not read.
        """
        if self._session is None:
            return
        try:
            if self._reader is not None and self._reader.is_open:
                if finish and self._started:
                    self._finish()
                self._close_channel()
            self._wait_returned(self.depth - self.acked)
        except BrokerConnectionError as exc:
            # Whatever was done stays done; the broker gives back the rest on disconnect.
            log.warning("closing the browse of %s: %s (the broker returns them)", self.queue, exc)
        finally:
            self._reader = None
            self._disconnect()

    def _close_channel(self) -> None:
        """Close the reader's channel without cancelling its consumers first.

        Cancelling a consumer (as the Python client's blocking close does) rejects
        (requeues) each delivery that reaches it meanwhile: a message sent to
        the active consumer but not yet received (one that arrived during the
        browse, past the snapshot) then goes back on its own, *before* the
        held ones are given back. RabbitMQ 3.10.8 still puts it behind them;
        4.0.5 puts it ahead, and the queue's order is lost (checked on both).
        A plain channel close (:meth:`QueueReader.release`) lets the broker
        give back everything the channel holds, in flight or not, together
        and in queue order on both versions.
        """
        reader = self._require_reader()
        self._amqp(lambda: reader.release(timeout=SETTLE_TIMEOUT))

    def _finish(self) -> None:
        """Make closing keep the order (checked on 3.10.8, see the module docstring).

        Messages in flight when a channel closes go back *behind* the queue,
        so first receive everything sent to the active consumer. If the last
        message read was not redelivered, every given-back message was ahead
        of it and what is still unread waits behind it: that suffices.
        Otherwise unread messages may sit in the returns list, ahead of where
        the read ones would go: read the whole pass.
        """
        if self._last_redelivered is False:
            self._drain()
        else:
            for _ in self.messages():
                pass

    # -- reading -------------------------------------------------------------

    def messages(self) -> Iterator[HeldMessage]:
        """The queue's messages from the head, each held until acked or the browser closes."""
        reader = self._require_reader()
        idle_since = time.monotonic()
        while self.seen < self.depth:
            if not self._buffer:
                if self._active is None and not self._start_consumer(reader):
                    return
                self._pump(0.1)
                if not self._buffer and time.monotonic() - idle_since > self._idle:
                    log.info("%s: nothing more to read after %d messages", self.queue, self.seen)
                    return
                continue
            idle_since = time.monotonic()
            message = self._take()
            self._last_redelivered = message.redelivered
            yield message

    def events(self, subscriber: str | None) -> Iterator[tuple[HeldMessage, FailedEvent]]:
        """:meth:`messages`, each with the failed event it holds (``subscriber``'s)."""
        for message in self.messages():
            event = records.parse(
                message.routing_key,
                message.message,
                subscriber=subscriber,
                position=message.position,
            )
            yield message, event

    def _take(self) -> HeldMessage:
        """The next buffered delivery; freezes its consumer once it holds its whole credit."""
        consumer, delivery = self._buffer.popleft()
        message = HeldMessage(
            delivery.tag,
            consumer,
            self.seen,
            delivery.exchange,
            delivery.routing_key,
            delivery.redelivered,
            delivery.message,
        )
        self.seen += 1
        self._holding[message.consumer] += 1
        if (
            message.consumer == self._active
            and self._holding[message.consumer] >= self._credit[message.consumer]
        ):
            # No credit left: nothing is in flight to it, so cancelling rejects nothing.
            self._amqp(lambda: self._require_reader().cancel(message.consumer))
            self._active = None
        return message

    def _drain(self) -> None:
        """Receive what the broker already sent the active consumer (see :meth:`close`)."""
        idle_since = time.monotonic()
        while self._active is not None and self.seen < self.depth:
            if self._buffer:
                self._take()
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self._idle:
                return
            else:
                self._pump(0.1)

    def ack(self, message: HeldMessage) -> None:
        """Remove ``message`` from the queue for good.

        An ack frees credit, and a consumer with credit left is sent more
        messages: past the snapshot, those would be events that arrived
        during the browse, in flight at the close (see :meth:`_freeze`).
        So the consumer is frozen first.
        """
        if message.consumer == self._active:
            self._freeze()
        reader = self._require_reader()
        try:
            reader.ack(message.tag)
        except BrokerConnectionError as exc:
            raise BrokerConnectionError(
                f"lost the broker while removing event from {self.queue!r}: {exc} "
                "(it was not removed; run the command again)"
            ) from exc
        self.acked += 1
        self._holding[message.consumer] -= 1

    def _freeze(self) -> None:
        """Receive the rest of the active consumer's credit, then cancel it.

        Its credit never reaches past the snapshot (:meth:`_start_consumer`),
        so the broker sends exactly that many messages; once all arrived,
        nothing is in flight and cancelling rejects nothing.
        """
        tag = self._active
        idle_since = time.monotonic()
        while tag is not None and self._received[tag] < self._credit[tag]:
            before = self._received[tag]
            self._pump(0.1)
            if self._received[tag] > before:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self._idle:
                log.info("%s: fewer messages than counted at the start", self.queue)
                break
        if tag is not None:
            self._amqp(lambda: self._require_reader().cancel(tag))
            self._active = None

    def pause(self, seconds: float) -> None:
        """Sleep while keeping the connection alive (heartbeats, buffered deliveries)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 1.0))

    # -- internals -----------------------------------------------------------

    def _pump(self, seconds: float) -> None:
        """Handle I/O for ``seconds``, then buffer and count what arrived."""
        assert self._session is not None
        session = self._session
        self._amqp(lambda: session.pump(seconds))
        self._collect()

    def _collect(self) -> None:
        if self._reader is None:
            return
        for consumer, delivery in self._reader.received():
            self._buffer.append((consumer, delivery))
            self._received[consumer] += 1

    def _amqp(self, step: Callable[[], object]) -> None:
        """Run one step of the session, saying what a failure means for the browse."""
        try:
            step()
        except RefusedError as exc:
            refusal = self._refused(exc.reply)
            if refusal is not None:
                raise refusal from exc
            raise self._lost(str(exc)) from exc
        except ConnectionLostError as exc:
            raise self._lost(exc.detail) from exc
        finally:
            self._collect()

    def _refused(self, reply: str) -> AccessRefusedError | None:
        """Which permission is missing when the broker refused us (403), with the grant."""
        return access.refused(
            reply, permission="read", doing=f"read queue {self.queue!r}", grant=self._grant
        )

    def _lost(self, detail: str) -> BrokerConnectionError:
        return BrokerConnectionError(
            f"lost the broker while reading {self.queue!r}: {detail} "
            "(nothing was removed that had not been handled; run the command again)"
        )

    def _start_consumer(self, reader: QueueReader) -> bool:
        """Open the next consumer of the pass; False at the consumer cap.

        Only once the previous one is frozen and read: a consumer opened
        early would have messages in flight if the reader stopped there.
        """
        index = len(self._credit)
        if index >= MAX_CONSUMERS:
            self.truncated = True
            log.warning("%s: stopped after %d messages (scan limit)", self.queue, self.seen)
            return False
        # Never past the snapshot: messages that arrive during the browse are
        # then never sent to it, so none is in flight at the close (RabbitMQ
        # 4.0.5 put such a message ahead of the held ones, even on a plain close).
        credit = min(self._chunks[min(index, len(self._chunks) - 1)], self.depth - self.seen)
        tag = f"hubbub-browse-{index:02d}"
        self._credit[tag], self._holding[tag], self._received[tag] = credit, 0, 0
        self._amqp(lambda: reader.consume(self.queue, credit=credit, tag=tag))
        self._active = tag
        self._started = True
        return True

    def _declare_passive(self) -> tuple[int, int]:
        assert self._session is not None
        try:
            counts = self._session.queue_counts(self.queue)
        except RefusedError as exc:
            raise BrokerConnectionError(
                f"cannot read queue {self.queue!r}: {exc.code} {exc.reply}"
            ) from exc
        if counts is None:
            raise QueueNotFoundError(f"queue {self.queue!r} does not exist")
        return counts.ready, counts.consumers

    def _wait_returned(self, expected: int) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            ready, _ = self._declare_passive()
            if ready >= expected:
                return
            time.sleep(0.05)
        log.info("%s: the broker is still returning messages", self.queue)

    def _require_reader(self) -> QueueReader:
        if self._reader is None or not self._reader.is_open:
            raise BrokerConnectionError(f"the browse of {self.queue!r} is not open")
        return self._reader

    def _disconnect(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
