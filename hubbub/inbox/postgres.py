"""An inbox store in PostgreSQL (psycopg 3 and its pool: ``pip install 'hubbub[postgres]'``).

One row per handled event, keyed by (subscriber, event_id), in a table the
store creates when it first connects (``CREATE TABLE IF NOT EXISTS``, under
an advisory lock so replicas starting together do not race). A claim is a
transaction on a pooled connection:

1. ``INSERT ... ON CONFLICT DO NOTHING`` under a ``lock_timeout``: no row
   inserted means the event was handled (skip); an insert that waits is
   another attempt of the same event holding the row, and past the timeout
   the attempt is retried later (:class:`~hubbub.inbox.InboxBusyError`);
2. the handler runs, and may write through :func:`hubbub.inbox.connection`
   in the same transaction;
3. ``COMMIT`` when it returns, ``ROLLBACK`` when it raises.

Rows older than ``keep`` are deleted every ten minutes by whichever claim
comes next (:meth:`PostgresStore.prune` does it at once): keep them at least
as long as events can come back (the archive's retention, the dead-letter
queues' age).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hubbub.connection import mask
from hubbub.inbox.base import DEFAULT_BUSY_TIMEOUT, InboxBusyError, InboxError, bind, unbind
from hubbub.topology.durations import format_duration, parse_duration

try:
    import psycopg
    from psycopg import errors, sql
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "hubbub.inbox.PostgresStore needs psycopg 3 and psycopg-pool: "
        "pip install 'hubbub[postgres]'"
    ) from exc

if TYPE_CHECKING:
    from psycopg import AsyncConnection, Connection

#: Seconds between two automatic prunes (with ``keep``).
PRUNE_EVERY = 600.0
DEFAULT_TABLE = "hubbub_inbox"

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    subscriber text NOT NULL,
    event_id text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscriber, event_id)
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (handled_at)
"""

#: This transaction's ``lock_timeout`` while the row is inserted, then the session's again.
_LOCK_TIMEOUT = sql.SQL("SELECT set_config('lock_timeout', %s, true)")
_DEFAULT_LOCK_TIMEOUT = sql.SQL("SET LOCAL lock_timeout TO DEFAULT")


class PostgresStore:
    """Handled events in a PostgreSQL table, shared by every replica of a subscriber.

    ``dsn``: a libpq connection string or URL. ``table`` may name a schema
    (``"app.inbox"``). ``keep``: how long a row is kept (``"30d"``, seconds,
    a timedelta; None keeps rows for ever). ``busy_timeout``: seconds an
    attempt waits for another attempt of the same event. ``max_connections``:
    the pool's size per process; each handler running holds one, so give at
    least the subscribers' concurrency summed (a claim waits for a free one
    up to ``connect_timeout`` seconds).

    Nothing connects until the first claim (or :meth:`check`): a store can be
    built at import time, in the module ``hubbub consume --middleware`` names.
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = DEFAULT_TABLE,
        keep: str | float | timedelta | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        max_connections: int = 20,
        connect_timeout: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.table = table
        self.keep = None if keep is None else parse_duration(keep)
        self.busy_timeout = busy_timeout
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise InboxError(f"inbox table {table!r}: name it 'table' or 'schema.table'")
        self._table = sql.Identifier(*parts)
        self._index = sql.Identifier(f"{parts[-1]}_handled_at")
        self._insert = sql.SQL(
            "INSERT INTO {} (subscriber, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        ).format(self._table)
        self._busy = f"{max(1, round(busy_timeout * 1000))}ms"  # lock_timeout's value
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._apools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncConnectionPool[Any]
        ] = weakref.WeakKeyDictionary()
        self._pruned = time.monotonic()
        self._pruning = threading.Lock()

    # -- claims -----------------------------------------------------------

    @contextmanager
    def claim(self, subscriber: str, event_id: str) -> Iterator[bool]:
        with self._ready().connection(timeout=self.connect_timeout) as conn:
            with conn.transaction():
                new = self._take(conn, subscriber, event_id)
                if not new:
                    yield False
                    return
                token = bind(conn)
                try:
                    yield True
                finally:
                    unbind(token)
            self._maybe_prune(conn)

    @asynccontextmanager
    async def aclaim(self, subscriber: str, event_id: str) -> AsyncIterator[bool]:
        pool = await self._aready()
        async with pool.connection(timeout=self.connect_timeout) as conn:
            async with conn.transaction():
                new = await self._atake(conn, subscriber, event_id)
                if not new:
                    yield False
                    return
                token = bind(conn)
                try:
                    yield True
                finally:
                    unbind(token)
            if self._prune_due():
                await asyncio.to_thread(self._prune_now)

    def _take(self, conn: Connection[Any], subscriber: str, event_id: str) -> bool:
        """Insert the row in ``conn``'s transaction: True if it is new, False if handled."""
        conn.execute(_LOCK_TIMEOUT, (self._busy,))
        try:
            inserted = conn.execute(self._insert, (subscriber, event_id)).rowcount
        except errors.LockNotAvailable:
            raise InboxBusyError(subscriber, event_id, self.busy_timeout) from None
        conn.execute(_DEFAULT_LOCK_TIMEOUT)  # the handler's own writes wait as they would
        return inserted == 1

    async def _atake(self, conn: AsyncConnection[Any], subscriber: str, event_id: str) -> bool:
        await conn.execute(_LOCK_TIMEOUT, (self._busy,))
        try:
            inserted = (await conn.execute(self._insert, (subscriber, event_id))).rowcount
        except errors.LockNotAvailable:
            raise InboxBusyError(subscriber, event_id, self.busy_timeout) from None
        await conn.execute(_DEFAULT_LOCK_TIMEOUT)
        return inserted == 1

    # -- connecting -------------------------------------------------------

    def check(self) -> None:
        """Connect and create the table if it is missing; InboxError (one line) if that fails."""
        self._ready()

    def _ready(self) -> ConnectionPool[Any]:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                self._create_table()
                self._pool = ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.max_connections,
                    kwargs={"autocommit": True},
                    name="hubbub-inbox",
                    open=True,
                    timeout=self.connect_timeout,
                )
            return self._pool

    async def _aready(self) -> AsyncConnectionPool[Any]:
        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is None:
            await asyncio.to_thread(self._ready)  # the table, and a clear error if unreachable
            pool = AsyncConnectionPool(
                self.dsn,
                min_size=1,
                max_size=self.max_connections,
                kwargs={"autocommit": True},
                name="hubbub-inbox-async",
                open=False,
                timeout=self.connect_timeout,
            )
            await pool.open(wait=True, timeout=self.connect_timeout)
            self._apools[loop] = pool
        return pool

    def _create_table(self) -> None:
        try:
            with (
                psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=max(1, round(self.connect_timeout))
                ) as conn,
                conn.transaction(),
            ):
                # One creator at a time: replicas that start together would race.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
                conn.execute(sql.SQL(_CREATE).format(table=self._table, index=self._index))
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise InboxError(
                f"inbox: cannot use table {self.table} in PostgreSQL at {mask(self.dsn)}: "
                f"{reason} (check the DSN, that the database is up, and that the user may "
                "create the table or it exists: see docs/inbox.md)"
            ) from None

    # -- pruning ----------------------------------------------------------

    def prune(self, older_than: str | float | timedelta | None = None) -> int:
        """Delete rows handled more than ``older_than`` ago (default: ``keep``); how many."""
        keep = self.keep if older_than is None else parse_duration(older_than)
        if keep is None:
            raise InboxError(
                "inbox prune: say how old a row must be (older_than=...), or build the "
                "store with keep=..."
            )
        with self._ready().connection(timeout=self.connect_timeout) as conn:
            return self._delete(conn, keep)

    def _delete(self, conn: Connection[Any], keep: float) -> int:
        statement = sql.SQL(
            "DELETE FROM {} WHERE handled_at < now() - make_interval(secs => %s)"
        ).format(self._table)
        return conn.execute(statement, (keep,)).rowcount

    def _prune_due(self) -> bool:
        return self.keep is not None and time.monotonic() - self._pruned >= PRUNE_EVERY

    def _maybe_prune(self, conn: Connection[Any]) -> None:
        if self._prune_due() and self._pruning.acquire(blocking=False):
            try:
                self._pruned = time.monotonic()
                assert self.keep is not None
                self._delete(conn, self.keep)
            finally:
                self._pruning.release()

    def _prune_now(self) -> None:
        with self._ready().connection(timeout=self.connect_timeout) as conn:
            self._maybe_prune(conn)

    # -- reading and closing ----------------------------------------------

    def handled(self, subscriber: str) -> set[str]:
        """The ids of the events ``subscriber`` handled (rows kept so far)."""
        statement = sql.SQL("SELECT event_id FROM {} WHERE subscriber = %s").format(self._table)
        with self._ready().connection(timeout=self.connect_timeout) as conn:
            return {row[0] for row in conn.execute(statement, (subscriber,))}

    def close(self) -> None:
        """Close the connection pool (a claim after it opens a new one)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        """Close this event loop's async pool."""
        pool = self._apools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    def __repr__(self) -> str:
        keep = "" if self.keep is None else f", keep={format_duration(self.keep)!r}"
        return f"PostgresStore({mask(self.dsn)!r}, table={self.table!r}{keep})"
