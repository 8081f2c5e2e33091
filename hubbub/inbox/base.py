"""The inbox middleware and the two-method interface its stores implement."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Protocol

from hubbub.errors import HubbubError, Retry
from hubbub.logs import event_fields
from hubbub.middleware import Middleware, NextAsyncHandler, NextHandler

if TYPE_CHECKING:
    from hubbub.envelope import Event

log = logging.getLogger("hubbub.inbox")

#: Seconds an attempt waits for another attempt of the same event to finish
#: before it is retried later instead.
DEFAULT_BUSY_TIMEOUT = 10.0


class InboxError(HubbubError):
    """The inbox cannot do what was asked (its store is unreachable, or misused)."""


class InboxBusyError(Retry):
    """Another attempt of the same event holds its inbox entry: this one is retried later.

    A :class:`~hubbub.Retry`, so the subscriber's retry policy counts it as
    an attempt and retries after ``after`` seconds.
    """

    def __init__(self, subscriber: str, event_id: str, waited: float) -> None:
        super().__init__(
            f"event {event_id} is being handled by another attempt of {subscriber} "
            f"(its inbox entry stayed locked for {waited:g} s): retried later",
            after=waited,
        )


class InboxStore(Protocol):
    """Where an inbox records which events each subscriber handled.

    ``claim`` (and ``aclaim`` for ``async def`` handlers) is a context
    manager around one handler run. On entry it yields False when
    (subscriber, event_id) is recorded already, and True when it is not, in
    which case the pair is now claimed: another claim of it waits (up to
    ``busy_timeout`` seconds, then raises :class:`InboxBusyError`). On a
    normal exit the pair is recorded as handled, durably, before the claim
    returns; on an exception it is released unrecorded and the exception
    propagates.
    """

    def claim(self, subscriber: str, event_id: str) -> AbstractContextManager[bool]: ...

    def aclaim(self, subscriber: str, event_id: str) -> AbstractAsyncContextManager[bool]: ...


_connection: ContextVar[Any] = ContextVar("hubbub_inbox_connection", default=None)


def connection() -> Any:
    """The database connection of the inbox entry the running handler holds.

    With a :class:`~hubbub.inbox.PostgresStore`: a psycopg ``Connection``
    (an ``AsyncConnection`` in an ``async def`` handler) inside the
    transaction that records the event as handled. What the handler writes
    through it commits with that record, or not at all: a redelivered or
    replayed event finds both done, or neither. Raises :class:`InboxError`
    outside a handler an inbox runs, and with a store that has no database.
    """
    found = _connection.get()
    if found is None:
        raise InboxError(
            "hubbub.inbox.connection() is the transaction of the event being handled: call "
            "it inside a handler that an Inbox with a PostgresStore runs"
        )
    return found


def bind(value: Any) -> Token[Any]:
    """Make ``value`` what :func:`connection` returns (a store's claim), until :func:`unbind`."""
    return _connection.set(value)


def unbind(token: Token[Any]) -> None:
    """Undo :func:`bind`."""
    _connection.reset(token)


class Inbox(Middleware):
    """A consume middleware that runs a subscriber's handler once per event id.

    Put it innermost (last in ``middleware=[...]``) unless an outer one must
    share its transaction, and on each subscriber that must be idempotent
    (``@hub.subscriber(..., middleware=[inbox])``) or on the hub for all.
    ``skipped`` counts the events it did not run because they were handled
    already (since the process started); ``on_skip(subscriber, topic)`` is
    called for each of them too.
    """

    def __init__(
        self, store: InboxStore, *, on_skip: Callable[[str, str], None] | None = None
    ) -> None:
        self.store = store
        self.skipped = 0
        #: Called with (subscriber, topic) for each event skipped (the worker's metrics).
        self.on_skip = on_skip
        self._lock = threading.Lock()

    def consume(self, event: Event, call_next: NextHandler) -> Any:
        subscriber = event.subscriber or ""
        with self.store.claim(subscriber, event.id) as new:
            if not new:
                return self._skip(event, subscriber)
            return call_next(event)

    async def aconsume(self, event: Event, call_next: NextAsyncHandler) -> Any:
        subscriber = event.subscriber or ""
        async with self.store.aclaim(subscriber, event.id) as new:
            if not new:
                return self._skip(event, subscriber)
            return await call_next(event)

    def _skip(self, event: Event, subscriber: str) -> None:
        with self._lock:
            self.skipped += 1
        if self.on_skip is not None:
            self.on_skip(subscriber, event.topic)
        log.info(
            "event %s (%s) already handled by %s: skipped",
            event.id,
            event.topic,
            subscriber,
            extra=event_fields(event.id, event.topic, subscriber, event.attempt),
        )

    def __repr__(self) -> str:
        return f"Inbox({self.store!r})"


__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "Inbox",
    "InboxBusyError",
    "InboxError",
    "InboxStore",
    "bind",
    "connection",
    "unbind",
]
