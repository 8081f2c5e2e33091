"""The one connection lifecycle of the pika transport, shared by publishers and consumers.

A :class:`Supervisor` owns everything about *having* a connection: the
order in which the hub's nodes are tried, the open errors (which are fatal,
which mean "try the next node"), what happens after a loss
(:class:`Reconnect`), the I/O loop on one thread, and the thread-safe way
into it. Its owner (the publisher or the consumer transport) only says what
to do with an open connection, through :class:`ConnectionEvents`.

Node rotation: the nodes are tried round robin from a random start
(:func:`hubbub.connection.node_order`). Every attempt goes to the node after
the last one tried, so after losing a node the other nodes come first, and
a whole cluster's clients spread over it.

Open errors: wrong credentials or a virtual host the user may not use will
not pass by retrying, so :meth:`Supervisor.run` raises them at once, as a
:class:`~hubbub.errors.BrokerConnectionError` with the fix in one line. Any
other open error moves on to the next node; when no node answered on the
first round (the connection never opened), ``run`` raises why the last one
did not.

Threads: :meth:`Supervisor.run` runs the I/O loop on the calling thread and
calls every :class:`ConnectionEvents` method there. :meth:`call_soon` and
:meth:`stop` may be called from any thread; the rest only on the I/O thread.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import pika
import pika.exceptions as pe
from pika.adapters.select_connection import SelectConnection
from pika.frame import Method

from hubbub.connection import node_order
from hubbub.errors import HubbubError
from hubbub.transport.pika.params import connect_error, parameters

log = logging.getLogger("hubbub.transport")

#: Consumers' reconnect backoff: the first wait and the cap, in seconds.
RECONNECT_FIRST, RECONNECT_CAP = 0.5, 30.0


@dataclass(frozen=True, slots=True)
class Reconnect:
    """What a supervisor does once an open connection is lost."""

    #: True: reconnect, with capped exponential backoff and jitter, until
    #: :meth:`Supervisor.stop`. False: :meth:`Supervisor.run` returns, and the
    #: owner calls it again when it needs a connection (the next publish).
    forever: bool
    first: float = RECONNECT_FIRST
    cap: float = RECONNECT_CAP

    def wait(self, failures: int) -> float:
        """Seconds to wait before attempt ``failures`` + 1: doubling, capped, half jittered."""
        wait: float = min(self.cap, self.first * 2 ** min(failures, 10))
        return wait / 2 + random.uniform(0, wait / 2)


#: A publisher's policy: a loss ends the run, the next send reconnects (nothing hidden
#: blocks a caller for as long as an outage lasts).
ON_NEXT_SEND = Reconnect(forever=False)
#: A consumer's policy: reconnect with capped exponential backoff until stopped.
WITH_BACKOFF = Reconnect(forever=True)


class ConnectionEvents(Protocol):
    """What a supervisor tells its owner, always on the I/O thread."""

    def opened(self, connection: SelectConnection, node: str) -> None:
        """``connection`` to ``node`` (``host:port``) is open: open channels on it."""
        ...

    def closed(self, reason: BaseException) -> None:
        """The connection that :meth:`opened` closed (lost, or closed on purpose)."""
        ...

    def blocked(self, reason: str | None) -> None:
        """The broker blocks publishes (``reason``: a resource alarm), or accepts them (None)."""
        ...


class Supervisor:
    """One connection at a time to one of ``urls``, labelled ``name`` in the broker's UI."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str,
        reconnect: Reconnect,
        heartbeat: int | None = None,
    ) -> None:
        self.urls = list(urls)
        self.reconnect = reconnect
        self._params = parameters(node_order(self.urls), name=name, heartbeat=heartbeat)
        self._next = 0  # index in _params of the node the next attempt goes to
        self._stopping = threading.Event()
        self._on_purpose = False  # the current connection is closed by its owner
        self._fatal: HubbubError | None = None
        #: The current connection (None between connections): I/O thread only.
        self.connection: SelectConnection | None = None
        #: ``host:port`` of the node connected to, None while not connected.
        self.node: str | None = None

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` (or :meth:`fail`) was called: no reconnect follows."""
        return self._stopping.is_set()

    # -- the calling thread ---------------------------------------------------

    def run(self, events: ConnectionEvents) -> None:
        """Connect, and run the I/O loop on this thread until the policy says to end.

        Returns after :meth:`stop`, or (``forever`` False) once the
        connection closed. Raises what :meth:`fail` was given, a fatal open
        error, or, when no node could be reached before a connection ever
        opened, why (both :class:`~hubbub.errors.BrokerConnectionError`).
        """
        failures = 0
        connected = False  # a connection opened in this run (then losses are retried)
        while not self._stopping.is_set():
            attempt = self._run_one(events)
            fatal = self._fatal or attempt.fatal
            if fatal is not None:
                raise fatal
            connected = connected or attempt.opened
            if self._stopping.is_set() or (attempt.opened and not self.reconnect.forever):
                return
            if not connected:
                failures += 1  # the first start tries every node once, then gives up
                if failures < len(self._params):
                    continue
                error = attempt.error or OSError("closed")
                raise connect_error(error, self.urls, timeout=attempt.params.stack_timeout)
            failures = 1 if attempt.opened else failures + 1
            wait = self.reconnect.wait(failures)
            log.warning("connection to the broker lost; reconnecting in %.1fs", wait)
            self._stopping.wait(wait)

    # -- any thread -----------------------------------------------------------

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the I/O thread; dropped when no connection runs."""
        connection = self.connection
        if connection is None:
            return
        try:
            connection.ioloop.add_callback_threadsafe(callback)
        except Exception:  # the loop closed under us: as if no connection ran
            log.debug("ioloop already closed", exc_info=True)

    def stop(self, *, close: bool = True) -> None:
        """No reconnect from now on; close the connection unless ``close`` is False.

        With ``close`` False the owner closes it when it is done (a graceful
        drain) and :meth:`run` returns then. Idempotent.
        """
        self._stopping.set()
        if close:
            self.call_soon(self.disconnect)

    def responsive(self, timeout: float) -> bool:
        """True when the I/O thread runs a posted callback within ``timeout`` s."""
        answered = threading.Event()
        self.call_soon(answered.set)
        return answered.wait(timeout)

    # -- the I/O thread -------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the I/O thread after ``delay`` s (dropped if the connection ends)."""
        if self.connection is not None:
            self.connection.ioloop.call_later(delay, callback)

    def disconnect(self, *, on_purpose: bool = False) -> None:
        """Close the current connection (a reconnect follows unless stopping).

        ``on_purpose``: the owner is done with it (a publisher closing), so its
        close is no news worth a log line.
        """
        self._on_purpose = self._on_purpose or on_purpose
        connection = self.connection
        if connection is not None and not (connection.is_closing or connection.is_closed):
            connection.close()

    def fail(self, error: HubbubError) -> None:
        """Stop with ``error``: close the connection, and :meth:`run` raises it."""
        log.debug("%s", error)  # run() raises it: the caller reports it once
        self._fatal = error
        self._stopping.set()
        self.disconnect()

    # -- one connection -------------------------------------------------------

    def _run_one(self, events: ConnectionEvents) -> _Attempt:
        """Run one connection, to the next node, until it closes.

        Its state is its own (not the supervisor's): a publisher may abandon
        a connection whose close the broker never answers, and the next run
        must not see it.
        """
        index = self._next % len(self._params)
        self._next = index + 1  # the next attempt, and the first after a loss: another node
        self._on_purpose = False
        attempt = _Attempt(self._params[index])
        params = attempt.params

        def on_open(connection: SelectConnection) -> None:
            attempt.opened = True
            if self._stopping.is_set():  # stopped while connecting
                connection.close()
                return
            self.node = f"{params.host}:{params.port}"
            log.log(self._levels[0], "connected to %s", self.node)
            attempt.announced = True
            events.opened(connection, self.node)

        def on_open_error(connection: SelectConnection, error: BaseException | str) -> None:
            attempt.error = error if isinstance(error, BaseException) else OSError(str(error))
            if isinstance(error, pe.ProbableAuthenticationError | pe.ProbableAccessDeniedError):
                attempt.fatal = connect_error(error, self.urls, timeout=params.stack_timeout)
            connection.ioloop.stop()

        def on_closed(connection: SelectConnection, why: BaseException) -> None:
            attempt.error = why
            if not (self._stopping.is_set() or self._on_purpose):
                log.log(self._levels[1], "connection closed: %s", why)
            connection.ioloop.stop()

        connection = SelectConnection(
            params,
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_closed,
        )
        connection.add_on_connection_blocked_callback(lambda _c, frame: _blocked(events, frame))
        connection.add_on_connection_unblocked_callback(lambda _c, _f: _unblocked(events))
        self.connection = connection
        try:
            connection.ioloop.start()
        finally:
            if self.connection is connection:  # not already replaced by a newer run
                self.connection, self.node = None, None
        if attempt.announced:
            events.closed(attempt.error or OSError("connection closed"))
        return attempt

    @property
    def _levels(self) -> tuple[int, int]:
        """Log levels of a connect and of a loss: news for a consumer, routine for a publisher."""
        return (
            (logging.INFO, logging.WARNING)
            if self.reconnect.forever
            else (logging.DEBUG, logging.INFO)
        )


@dataclass(slots=True)
class _Attempt:
    """One connection attempt: to which node, how it went."""

    params: pika.ConnectionParameters
    opened: bool = False
    announced: bool = False  # events.opened was called: events.closed follows
    error: BaseException | None = None  # why it failed to open, or closed
    fatal: HubbubError | None = None  # an open error no other node will cure


def _blocked(events: ConnectionEvents, frame: Method) -> None:
    # RabbitMQ stops reading from a publishing connection during a memory or
    # disk alarm and says why (connection.blocked): confirms stop coming.
    reason = getattr(frame.method, "reason", None) or "a resource alarm"
    log.warning("the broker is blocking publishers: %s", reason)
    events.blocked(reason)


def _unblocked(events: ConnectionEvents) -> None:
    log.info("the broker accepts publishes again")
    events.blocked(None)
