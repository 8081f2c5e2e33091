"""The publisher transport on pika: one confirm-mode channel, owned by its own I/O thread.

Every thread may call :meth:`PikaPublisherTransport.send_many`; the messages
are handed to the I/O thread, which publishes them and settles each
:class:`~hubbub.transport.base.Pending` when the broker acks it, or fails it
on a nack, a return (unroutable), a closed channel or a lost connection. Up
to ``window`` messages are in flight at once, matched to confirms by
delivery tag, so throughput is the broker's, not one round trip per
message; the frames of all the messages one wake-up publishes leave in one
socket write (:mod:`hubbub.transport.pika._frames`), written by
:mod:`hubbub.transport.pika._outbound` where this pika has the internals it
needs (else by ``basic_publish``).

Each connection is one :class:`_Link` run by the
:class:`~hubbub.transport.pika.supervisor.Supervisor` (which picks the node
and translates open errors). When a connection is lost every unconfirmed
message fails, and the next send opens a new one, on another node first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager

import pika
import pika.exceptions as pe
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.frame import Method
from pika.spec import Basic

from hubbub.errors import HubbubError, PublishError
from hubbub.message import Message
from hubbub.transport.base import Pending
from hubbub.transport.errors import UnroutableError
from hubbub.transport.pika import _outbound
from hubbub.transport.pika._frames import one_write
from hubbub.transport.pika._internals import usable
from hubbub.transport.pika.convert import to_pika
from hubbub.transport.pika.params import connect_error
from hubbub.transport.pika.supervisor import ON_NEXT_SEND, Supervisor

log = logging.getLogger(__name__)

#: Unconfirmed messages one connection keeps in flight.
DEFAULT_WINDOW = 1000
#: Seconds :meth:`PikaPublisherTransport.connect` waits for a confirm-mode channel.
CONNECT_TIMEOUT = 60.0

#: ``publish(channel, exchange, routing_key, body, properties, *, mandatory)``
Publish = Callable[..., None]


class PikaPublisherTransport:
    """:class:`~hubbub.transport.base.PublisherTransport` on RabbitMQ; thread-safe."""

    def __init__(self, urls: Sequence[str], *, name: str, window: int = DEFAULT_WINDOW) -> None:
        #: The connection's name in the broker's UI.
        self.name = name
        self.supervisor = Supervisor(urls, name=name, reconnect=ON_NEXT_SEND)
        self._window = window
        self._lock = threading.Lock()  # one connect (or close) at a time
        self._link: _Link | None = None

    @property
    def live(self) -> bool:
        link = self._link
        return link is not None and not link.dead.is_set()

    @property
    def blocked(self) -> str | None:
        link = self._link
        return None if link is None else link.alarm

    def connect(self) -> None:
        self._live_link()

    def send_many(self, pending: Sequence[Pending]) -> None:
        self._live_link().send_many(pending)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:  # no new connection while this one closes
            link, self._link = self._link, None
            if link is not None:
                link.close(timeout)

    def _live_link(self) -> _Link:
        link = self._link
        if link is not None and not link.dead.is_set():
            return link
        with self._lock:
            link = self._link
            if link is None or link.dead.is_set():
                link = _Link(self.supervisor, self._window)
                try:
                    link.ready.result(timeout=CONNECT_TIMEOUT)
                except HubbubError:
                    raise
                except FutureTimeout as exc:
                    raise PublishError("timed out connecting to the broker") from exc
                self._link = link
            return link


class _Link:
    """One connection's publishing: its channel, its window, its unconfirmed messages.

    :meth:`send_many` and :meth:`close` from any thread; the rest is the
    supervisor's :class:`~hubbub.transport.pika.supervisor.ConnectionEvents`
    and runs on the I/O thread.
    """

    def __init__(self, supervisor: Supervisor, window: int) -> None:
        self._supervisor = supervisor
        self._window = window
        self._lock = threading.Lock()
        self._incoming: deque[Pending] = deque()
        self._wake_pending = False
        self._unconfirmed: OrderedDict[int, Pending] = OrderedDict()
        self._returned: dict[int, str] = {}
        self._tag = 0
        self._connection: SelectConnection | None = None
        self._channel: Channel | None = None
        self._closing = False
        self._publish: Publish = _basic_publish
        self._batch: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext
        self._lost: BaseException | None = None
        self.ready: Future[None] = Future()
        self.dead = threading.Event()
        #: Why the broker blocks this connection's publishes (a resource alarm:
        #: "low on memory", "low on disk"), None while it does not.
        self.alarm: str | None = None
        self._thread = threading.Thread(target=self._run, name="hubbub-publisher", daemon=True)
        self._thread.start()

    # -- any thread -------------------------------------------------------

    def send_many(self, pending: Sequence[Pending]) -> None:
        """Queue ``pending`` in order, waking the I/O thread once for all of them."""
        with self._lock:
            dead = self.dead.is_set()
            wake = not (dead or self._wake_pending or self._connection is None)
            if not dead:
                self._incoming.extend(pending)
                self._wake_pending = self._wake_pending or wake
        if dead:
            error = PublishError("the publisher's connection is closed")
            for message in pending:
                message.settle(error)
        elif wake:
            self._supervisor.call_soon(self._drain)

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for in-flight confirms, then close without them.

        Messages still unconfirmed then fail (stored or not), as on a lost
        connection. Returns within ``timeout`` plus at most 5.5 s; a broker
        that never answers the close (it blocks the connection) is left to
        the I/O thread, a daemon.
        """
        if not self.dead.is_set() and self._connection is not None:
            self._supervisor.call_soon(self._begin_close)
        self._thread.join(timeout)
        if self._thread.is_alive() and self._connection is not None:
            self._supervisor.call_soon(self._supervisor.disconnect)
            self._thread.join(min(timeout, 5) + 0.5)

    # -- the I/O thread -----------------------------------------------------

    def _run(self) -> None:
        try:
            self._supervisor.run(self)
        except HubbubError as exc:  # no node could be reached: before the link was ready
            self.ready.set_exception(exc)
        except Exception as exc:  # the waiting sender must hear of it
            log.exception("the publisher's I/O thread failed")
            if not self.ready.done():
                self.ready.set_exception(PublishError(f"the publisher's connection failed: {exc}"))
        if not self.ready.done():  # opened, but closed before its channel was ready
            why = self._lost or OSError("closed while opening")
            self.ready.set_exception(connect_error(why, self._supervisor.urls))
        lost = "the connection to the broker closed before it confirmed"
        if self.alarm is not None:
            lost += f" (it was blocking publishers: {self.alarm}, a resource alarm)"
        self._die(PublishError(lost))

    def opened(self, connection: SelectConnection, node: str) -> None:
        self._connection = connection
        connection.channel(on_open_callback=self._on_channel)

    def closed(self, reason: BaseException) -> None:
        self._lost = reason

    def blocked(self, reason: str | None) -> None:
        self.alarm = reason

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
        if usable("publish frames", "pika's basic_publish", _outbound.internals(channel)):
            # basic_publish's bytes at half its cost, a batch in one write
            self._publish = _outbound.publish
            self._batch = lambda: one_write(self._connection)
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
        with self._batch():  # one system call for the batch, not 3 per message
            self._publish_waiting(channel)

    def _publish_waiting(self, channel: Channel) -> None:
        while self._incoming and len(self._unconfirmed) < self._window:
            message = self._incoming.popleft()
            if not message.claim():
                continue
            out = message.outbound
            try:
                self._publish(
                    channel,
                    out.exchange,
                    out.routing_key,
                    out.message.body,
                    out.message,
                    mandatory=out.mandatory,
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
                out = message.outbound
                message.settle(
                    PublishError(
                        f"the broker refused the message for {out.exchange!r} "
                        f"(routing key {out.routing_key!r}): not stored"
                    )
                )
            elif self._returned and tag in self._returned:
                message.settle(UnroutableError(self._returned.pop(tag)))
            else:
                message.settle(None)
        if self._incoming:
            self._drain()
        if self._closing and not self._unconfirmed:
            self._supervisor.disconnect(on_purpose=True)

    def _settle_upto(self, tag: int, multiple: bool) -> list[tuple[int, Pending]]:
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
            out = message.outbound
            if (
                out.mandatory
                and tag not in self._returned
                and out.exchange == method.exchange
                and out.routing_key == method.routing_key
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
        if connection is None or not connection.is_open:
            return
        if self._closing:
            self._supervisor.disconnect(on_purpose=True)
        else:
            connection.channel(on_open_callback=self._on_channel)

    def _begin_close(self) -> None:
        self._closing = True
        if not self._unconfirmed:
            self._supervisor.disconnect(on_purpose=True)

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
    properties: Message,
    *,
    mandatory: bool,
) -> None:
    """pika's own path: :func:`_outbound.publish` where this pika lacks its internals."""
    channel.basic_publish(exchange, routing_key, body, to_pika(properties), mandatory=mandatory)


def _explain_channel_close(reason: BaseException) -> str:
    if isinstance(reason, pe.ChannelClosedByBroker):
        if reason.reply_code == 404:
            return (
                f"{reason.reply_text}: the exchange does not exist; run "
                "'hubbub topology apply' first. The message was not stored"
            )
        return f"the broker closed the channel: {reason.reply_code} {reason.reply_text}"
    return f"the channel closed before the broker confirmed ({reason})"
