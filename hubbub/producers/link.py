"""One AMQP connection in confirm mode, owned by its own I/O thread.

Every thread may call :meth:`Link.send` or :meth:`Link.send_many`; the
messages are handed to the I/O thread, which publishes them and settles each
(its future, or its confirm group) when the broker acks it, or fails it on a
nack, a closed channel or a lost connection. Up to ``window`` messages are in
flight at once, matched to confirms by delivery tag, so throughput is the
broker's, not one round trip per message; the frames of all the messages one
wake-up publishes leave in one socket write (:mod:`hubbub.transport.pika._frames`). A link
lives as long as its connection: when that is lost every unconfirmed message
fails and the owner opens a new link.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions as pe
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.frame import Method
from pika.spec import Basic

from hubbub import outbound
from hubbub.errors import HubbubError, PublishError
from hubbub.message import Message
from hubbub.transport.confirms import ConfirmGroup
from hubbub.transport.pika._frames import one_write
from hubbub.transport.pika.convert import to_pika
from hubbub.transport.pika.params import connect_error

log = logging.getLogger(__name__)

#: Unconfirmed messages one link keeps in flight.
DEFAULT_WINDOW = 1000


@dataclass(slots=True)
class Outgoing:
    """A message waiting to be published, and who waits for its confirm.

    ``properties`` is hubbub's :class:`~hubbub.message.Message` (its body is
    ``body``); it becomes pika's only as it is written (:func:`_basic_publish`;
    :func:`hubbub.outbound.publish` reads the same attribute names).

    Either ``future`` resolves on the confirm (one message), or ``group``
    counts it at position ``index`` (many messages, see
    :class:`~hubbub.transport.confirms.ConfirmGroup`). Only the I/O thread
    settles a message once it took it; :meth:`settle` makes a second
    outcome (a nack after a return, a channel closing) a no-op.
    """

    exchange: str
    routing_key: str
    body: bytes
    properties: Message | None
    future: Future[None] | None = None
    mandatory: bool = False
    group: ConfirmGroup | None = None
    index: int = 0
    settled: bool = False

    def claim(self) -> bool:
        """Take the message for sending; False if its sender withdrew it (cancelled)."""
        return self.future is None or self.future.set_running_or_notify_cancel()

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


class Link:
    """A confirm-mode channel on a SelectConnection run by a dedicated thread."""

    def __init__(
        self,
        params: Sequence[pika.ConnectionParameters],
        *,
        window: int = DEFAULT_WINDOW,
        urls: Sequence[str] = (),
    ) -> None:
        self._params = list(params)
        #: The URLs ``params`` came from, for error messages (masked when printed).
        self._urls = list(urls) or _urls(self._params)
        self._window = window
        self._lock = threading.Lock()
        self._incoming: deque[Outgoing] = deque()
        self._wake_pending = False
        self._unconfirmed: OrderedDict[int, Outgoing] = OrderedDict()
        self._returned: dict[int, str] = {}
        self._tag = 0
        self._connection: SelectConnection | None = None
        self._channel: Channel | None = None
        self._closing = False
        self._publish: Callable[..., None] = _basic_publish
        #: Index in ``params`` of the node this link connected to (None until it did).
        self.node: int | None = None
        self._trying = 0
        self.ready: Future[None] = Future()
        self.dead = threading.Event()
        #: Why the broker blocks this connection's publishes (a resource alarm:
        #: "low on memory", "low on disk"), None while it does not.
        self.blocked: str | None = None
        self._thread = threading.Thread(target=self._run, name="hubbub-publisher", daemon=True)
        self._thread.start()

    # -- any thread -------------------------------------------------------

    def send(self, message: Outgoing) -> None:
        """Queue ``message``; it is settled on the broker's confirm."""
        self.send_many((message,))

    def send_many(self, messages: Sequence[Outgoing]) -> None:
        """Queue ``messages`` in order, waking the I/O thread once for all of them."""
        with self._lock:
            dead = self.dead.is_set()
            wake = not (dead or self._wake_pending or self._connection is None)
            if not dead:
                self._incoming.extend(messages)
                self._wake_pending = self._wake_pending or wake
        if dead:
            error = PublishError("the publisher's connection is closed")
            for message in messages:
                message.settle(error)
        elif wake:
            self._call(self._drain)

    def close(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` s for in-flight confirms, then close without them.

        Messages still unconfirmed then fail (stored or not), as on a lost
        connection. Returns within ``timeout`` plus at most 5.5 s; a broker
        that never answers the close (it blocks the connection) is left to
        the I/O thread, a daemon.
        """
        if not self.dead.is_set() and self._connection is not None:
            self._call(self._begin_close)
        self._thread.join(timeout)
        if self._thread.is_alive() and self._connection is not None:
            self._call(self._shutdown)
            self._thread.join(min(timeout, 5) + 0.5)

    def _call(self, callback: Any) -> None:
        connection = self._connection
        try:
            if connection is not None:
                connection.ioloop.add_callback_threadsafe(callback)
        except Exception:
            log.debug("publisher ioloop already closed", exc_info=True)

    # -- the I/O thread -----------------------------------------------------

    def _run(self) -> None:
        error: BaseException | None = None
        for index, params in enumerate(self._params):
            self._trying = index
            self._connection = SelectConnection(
                params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self._connection.add_on_connection_blocked_callback(self._on_blocked)
            self._connection.add_on_connection_unblocked_callback(self._on_unblocked)
            self._connection.ioloop.start()
            if self.ready.done() and self.ready.exception() is None:
                break
            error = self._open_error
        else:
            if not self.ready.done():
                why = error or OSError("no broker URL")
                timeout = self._params[-1].stack_timeout if self._params else None
                self.ready.set_exception(connect_error(why, self._urls, timeout=timeout))
        lost = "the connection to the broker closed before it confirmed"
        if self.blocked is not None:
            lost += f" (it was blocking publishers: {self.blocked}, a resource alarm)"
        self._die(PublishError(lost))

    _open_error: BaseException | None = None

    def _on_open(self, connection: SelectConnection) -> None:
        self.node = self._trying
        connection.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, connection: SelectConnection, exc: BaseException | str) -> None:
        self._open_error = exc if isinstance(exc, BaseException) else OSError(str(exc))
        connection.ioloop.stop()

    def _on_blocked(self, _connection: SelectConnection, frame: Method) -> None:
        # RabbitMQ stops reading from a publishing connection during a memory
        # or disk alarm and says why (connection.blocked): confirms stop coming.
        self.blocked = getattr(frame.method, "reason", None) or "a resource alarm"
        log.warning("the broker is blocking publishers: %s", self.blocked)

    def _on_unblocked(self, _connection: SelectConnection, _frame: Method) -> None:
        self.blocked = None
        log.info("the broker accepts publishes again")

    def _on_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(
            self._on_confirm, callback=lambda _frame: self._on_confirm_mode(channel)
        )

    def _on_confirm_mode(self, channel: Channel) -> None:
        # Only now may messages go out on it: one published before confirm.select
        # is never confirmed, and would wait forever under a tag the broker skips.
        self._channel = channel
        self._tag = 0
        if outbound.supported(channel.connection):  # basic_publish's bytes at half its cost
            self._publish = outbound.publish
        if not self.ready.done():
            self.ready.set_result(None)
        with self._lock:
            self._wake_pending = True
        self._drain()

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
        channel = self._channel
        if channel is None or not channel.is_open or self._closing:
            return
        with one_write(self._connection):  # one system call for the batch, not 3 per message
            self._publish_waiting(channel)

    def _publish_waiting(self, channel: Channel) -> None:
        while self._incoming and len(self._unconfirmed) < self._window:
            message = self._incoming.popleft()
            if not message.claim():
                continue
            try:
                self._publish(
                    channel,
                    message.exchange,
                    message.routing_key,
                    message.body,
                    message.properties,
                    mandatory=message.mandatory,
                )
            except Exception as exc:  # noqa: BLE001 - e.g. an unencodable header
                message.settle(PublishError(f"cannot publish: {exc}"))
                continue
            self._tag += 1
            self._unconfirmed[self._tag] = message

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        settled = self._settle_upto(method.delivery_tag, method.multiple)
        nacked = isinstance(method, Basic.Nack)
        for tag, message in settled:
            if nacked:
                message.settle(
                    PublishError(
                        f"the broker refused the message for {message.exchange!r} "
                        f"(routing key {message.routing_key!r}): not stored"
                    )
                )
            elif self._returned and tag in self._returned:
                message.settle(UnroutableError(self._returned.pop(tag)))
            else:
                message.settle(None)
        if self._incoming:
            self._drain()
        if self._closing and not self._unconfirmed:
            self._shutdown()

    def _settle_upto(self, tag: int, multiple: bool) -> list[tuple[int, Outgoing]]:
        if not multiple:
            message = self._unconfirmed.pop(tag, None)
            return [(tag, message)] if message else []
        settled = []
        while self._unconfirmed:
            first = next(iter(self._unconfirmed))
            if first > tag:
                break
            settled.append(self._unconfirmed.popitem(last=False))
        return settled

    def _on_return(
        self, _ch: Channel, method: Basic.Return, _props: pika.BasicProperties, _body: bytes
    ) -> None:
        # A return precedes the ack of the same message: the oldest mandatory
        # unconfirmed message to that exchange and key is the one returned.
        for tag, message in self._unconfirmed.items():
            if (
                message.mandatory
                and tag not in self._returned
                and message.exchange == method.exchange
                and message.routing_key == method.routing_key
            ):
                self._returned[tag] = (
                    f"no queue is bound for routing key {method.routing_key!r} on "
                    f"exchange {method.exchange!r} ({method.reply_text})"
                )
                return

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        self._channel = None
        error = PublishError(_explain_channel_close(reason))
        for _, message in self._settle_upto(self._tag, multiple=True):
            message.settle(error)
        self._returned.clear()
        connection = self._connection
        if not self._closing and connection is not None and connection.is_open:
            connection.channel(on_open_callback=self._on_channel)
        elif connection is not None and connection.is_open:
            connection.close()

    def _on_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        if not self.ready.done():
            self._open_error = reason
        connection.ioloop.stop()

    def _begin_close(self) -> None:
        self._closing = True
        if not self._unconfirmed:
            self._shutdown()

    def _shutdown(self) -> None:
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()

    def _die(self, error: HubbubError) -> None:
        with self._lock:
            self.dead.set()
            stranded = [m for _, m in self._unconfirmed.items()] + list(self._incoming)
            self._unconfirmed.clear()
            self._incoming.clear()
        for message in stranded:
            message.settle(error)


def _basic_publish(
    channel: Channel,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: Message | None,
    *,
    mandatory: bool = False,
) -> None:
    props = None if properties is None else to_pika(properties)
    channel.basic_publish(exchange, routing_key, body, props, mandatory=mandatory)


class UnroutableError(PublishError):
    """A mandatory message reached no queue (only for exchanges without a fallback)."""


def _urls(params: Sequence[pika.ConnectionParameters]) -> list[str]:
    return [f"amqp://{p.host}:{p.port}/" for p in params]


def _explain_channel_close(reason: BaseException) -> str:
    if isinstance(reason, pe.ChannelClosedByBroker):
        if reason.reply_code == 404:
            return (
                f"{reason.reply_text}: the exchange does not exist; run "
                "'hubbub topology apply' first. The message was not stored"
            )
        return f"the broker closed the channel: {reason.reply_code} {reason.reply_text}"
    return f"the channel closed before the broker confirmed ({reason})"
