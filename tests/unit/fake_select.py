"""A stand-in for pika's SelectConnection: scripted nodes, a real loop, no socket.

For the tests of the connection supervisor and the publisher transport
(``hubbub.transport.pika``): each node (by host) opens, refuses the socket or
refuses the credentials, as :class:`Nodes` says; the I/O loop runs posted
callbacks and timers on the thread that starts it, as pika's does, so
thread hand-overs are exercised for real. Channels record what is published
and let a test confirm, nack or return it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pika.exceptions as pe
from pika.spec import Basic

Callback = Callable[[], None]


class FakeIOLoop:
    """Runs callbacks (any thread may post) and timers on the thread in :meth:`start`."""

    def __init__(self) -> None:
        self._calls: deque[Callback] = deque()
        self._timers: list[tuple[float, int, Callback]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False

    def add_callback_threadsafe(self, callback: Callback) -> None:
        with self._wake:
            self._calls.append(callback)
            self._wake.notify()

    def call_later(self, delay: float, callback: Callback) -> None:
        with self._wake:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._order), callback))
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def start(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and not self._calls and not self._due():
                    wait = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._wake.wait(wait)
                if self._stopped:
                    return
                callback = self._calls.popleft() if self._calls else heapq.heappop(self._timers)[2]
            callback()

    def _due(self) -> bool:
        return bool(self._timers) and self._timers[0][0] <= time.monotonic()


class FakeChannel:
    """A channel in confirm mode once asked; ``published`` holds what was sent."""

    def __init__(self, connection: FakeSelectConnection) -> None:
        self.connection = connection
        self.is_open = True
        self.published: list[tuple[str, str, bytes, Any, bool]] = []
        self._on_close: list[Callable[..., None]] = []
        self._on_return: list[Callable[..., None]] = []
        self._on_confirm: Callable[..., None] | None = None

    def add_on_close_callback(self, callback: Callable[..., None]) -> None:
        self._on_close.append(callback)

    def add_on_return_callback(self, callback: Callable[..., None]) -> None:
        self._on_return.append(callback)

    def confirm_delivery(
        self, ack_nack_callback: Callable[..., None], callback: Callable[..., None]
    ) -> None:
        self._on_confirm = ack_nack_callback
        self.connection.ioloop.add_callback_threadsafe(lambda: callback(None))

    def basic_publish(
        self, exchange: str, routing_key: str, body: bytes, properties: Any, mandatory: bool
    ) -> None:
        if not self.is_open:
            raise pe.ChannelWrongStateError("channel is closed")
        self.published.append((exchange, routing_key, body, properties, mandatory))

    # -- what the broker does (call on the I/O thread: via post) -------------

    def ack(self, tag: int, multiple: bool = False) -> None:
        assert self._on_confirm is not None
        self._on_confirm(SimpleNamespace(method=Basic.Ack(tag, multiple)))

    def nack(self, tag: int, multiple: bool = False) -> None:
        assert self._on_confirm is not None
        self._on_confirm(SimpleNamespace(method=Basic.Nack(tag, multiple)))

    def give_back(self, exchange: str, routing_key: str) -> None:
        method = Basic.Return(312, "NO_ROUTE", exchange, routing_key)
        for callback in self._on_return:
            callback(self, method, None, b"")

    def close_by_broker(self, code: int, text: str) -> None:
        self.is_open = False
        for callback in self._on_close:
            callback(self, pe.ChannelClosedByBroker(code, text))


class Nodes:
    """What each node (by host) does when connected to, and what was tried."""

    def __init__(self, **behaviour: str) -> None:
        #: host -> "open", "refused", "credentials" or "vhost".
        self.behaviour = behaviour
        self.tried: list[str] = []
        self.connections: list[FakeSelectConnection] = []

    def connection(self, params: Any, **callbacks: Any) -> FakeSelectConnection:
        """What the supervisor constructs in place of ``SelectConnection``."""
        self.tried.append(params.host)
        connection = FakeSelectConnection(params, self.behaviour[params.host], **callbacks)
        self.connections.append(connection)
        return connection


class FakeSelectConnection:
    """Opens or fails as its node's behaviour says, once its loop starts."""

    def __init__(
        self,
        params: Any,
        behaviour: str,
        *,
        on_open_callback: Callable[..., None],
        on_open_error_callback: Callable[..., None],
        on_close_callback: Callable[..., None],
    ) -> None:
        self.params = params
        self.ioloop = FakeIOLoop()
        self.is_open = self.is_closing = self.is_closed = False
        self.channels: list[FakeChannel] = []
        self._on_close = on_close_callback
        self.blocked: Callable[..., None] | None = None
        self.unblocked: Callable[..., None] | None = None
        if behaviour == "open":

            def start() -> None:
                self.is_open = True
                on_open_callback(self)

        else:
            error = {
                "refused": pe.AMQPConnectionError(ConnectionRefusedError(111, "refused")),
                "credentials": pe.ProbableAuthenticationError("403 ACCESS_REFUSED"),
                "vhost": pe.ProbableAccessDeniedError("530 NOT_ALLOWED"),
            }[behaviour]

            def start() -> None:
                self.is_closed = True
                on_open_error_callback(self, error)

        self.ioloop.add_callback_threadsafe(start)

    def add_on_connection_blocked_callback(self, callback: Callable[..., None]) -> None:
        self.blocked = callback

    def add_on_connection_unblocked_callback(self, callback: Callable[..., None]) -> None:
        self.unblocked = callback

    def channel(self, on_open_callback: Callable[[FakeChannel], None]) -> FakeChannel:
        channel = FakeChannel(self)
        self.channels.append(channel)
        self.ioloop.add_callback_threadsafe(lambda: on_open_callback(channel))
        return channel

    def close(self) -> None:
        self._end(pe.ConnectionClosedByClient(200, "Normal shutdown"))

    def lose(self) -> None:
        """The network drops the connection (I/O thread)."""
        self._end(pe.StreamLostError("Stream connection lost: ConnectionResetError(104)"))

    def _end(self, reason: BaseException) -> None:
        if self.is_closed:
            raise pe.ConnectionWrongStateError("closed already")
        self.is_open, self.is_closed = False, True
        for channel in self.channels:
            if channel.is_open:
                channel.is_open = False
                for callback in channel._on_close:
                    callback(channel, reason)
        self.ioloop.add_callback_threadsafe(lambda: self._on_close(self, reason))
