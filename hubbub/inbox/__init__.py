"""The inbox: idempotent consumers, so an event a subscriber already handled is skipped.

RabbitMQ delivers at least once: a consumer that dies after its handler
returned but before its ack reached the broker gets the event again, a
replay from the archive or the dead-letter queue copies events a subscriber
may already have handled, and a backfill can overlap what the new subscriber
got live. :class:`Inbox` is a consume middleware that makes a subscriber
handle each event id once::

    from hubbub import Hub
    from hubbub.inbox import Inbox, PostgresStore

    hub = Hub("shop", middleware=[Inbox(PostgresStore("postgresql://app@db/shop"))])

Before the handler runs, the inbox *claims* the pair (subscriber, event id)
in its store: a pair already recorded means the event was handled, so the
handler is not called and the event is acked (logged at INFO as skipped). A
new pair is recorded when the handler returns, in the same transaction the
claim opened; when the handler raises, nothing is recorded and the retry
policy decides as always, so the next attempt runs it again. A claim held by
another attempt still running (the same event delivered twice at once, or a
handler written off past its timeout) makes this attempt wait for it, then
skip if it succeeded; past ``busy_timeout`` the attempt is retried later
(:class:`hubbub.Retry`), never run beside it.

Stores (see :class:`InboxStore`): :class:`MemoryStore` (one process: tests,
the in-memory hub) and :class:`PostgresStore`, whose transaction a handler
can share through :func:`connection` so its own writes and the inbox record
commit together (what the handler did, it did once).

See ``docs/inbox.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubbub.inbox.base import (
    DEFAULT_BUSY_TIMEOUT,
    Inbox,
    InboxBusyError,
    InboxError,
    InboxStore,
    connection,
)
from hubbub.inbox.memory import MemoryStore

if TYPE_CHECKING:
    from hubbub.inbox.postgres import PostgresStore


def __getattr__(name: str) -> Any:
    # psycopg is an extra (hubbub[postgres]): imported only when asked for.
    if name == "PostgresStore":
        from hubbub.inbox.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'hubbub.inbox' has no attribute {name!r}")


__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "Inbox",
    "InboxBusyError",
    "InboxError",
    "InboxStore",
    "MemoryStore",
    "PostgresStore",
    "connection",
]
