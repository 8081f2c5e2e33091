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

When the database restarts, the pooled connections are all broken: a claim
that gets one replaces it before anything ran (step 1), so only the events
whose handler was inside step 2 fail their attempt (their writes rolled
back). While the database is down, a claim waits up to ``connect_timeout``
for it and then fails in one :class:`~hubbub.inbox.InboxError` line; the
outage is logged once, and its end. ``async def`` handlers' claims use a
small set of connections per event loop with no background tasks, so a loop
that stops (a worker's own) has nothing of the store's to cancel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hubbub.connection import mask
from hubbub.inbox.base import DEFAULT_BUSY_TIMEOUT, InboxBusyError, InboxError, bind, unbind
from hubbub.topology.durations import format_duration, parse_duration

try:
    import psycopg
    from psycopg import errors, sql
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "hubbub.inbox.PostgresStore needs psycopg 3 and psycopg-pool: "
        "pip install 'hubbub[postgres]'"
    ) from exc

if TYPE_CHECKING:
    from psycopg import AsyncConnection, Connection

log = logging.getLogger("hubbub.inbox")

#: Seconds between two automatic prunes (with ``keep``).
PRUNE_EVERY = 600.0
DEFAULT_TABLE = "hubbub_inbox"
#: Connections a store's pool holds at most, per process, unless told.
DEFAULT_CONNECTIONS = 20

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    subscriber text NOT NULL,
    event_id text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscriber, event_id)
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (handled_at)
"""

_CLAIM = sql.SQL(
    "SELECT set_config('lock_timeout', {busy}, true); "
    "INSERT INTO {table} (subscriber, event_id) VALUES ({subscriber}, {event_id}) "
    "ON CONFLICT DO NOTHING; "
    "SET LOCAL lock_timeout TO DEFAULT"
)


#: How many times a claim takes another connection when the one it got is broken.
RECONNECTS = 3
#: Seconds between two connection attempts of an async claim waiting for its database.
_RECONNECT_PAUSE = (0.05, 1.0)
_POOL_NAME = "hubbub-inbox"


class _InboxConnection(psycopg.Connection[Any]):
    """The inbox's connections (so the pool's own warnings about them are told apart)."""


class _PoolNoise(logging.Filter):
    """Drop psycopg_pool's warnings about the inbox's pool: each reconnection attempt
    logs one (two lines, while the database is down); the store says it once instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            first = args[0]
            return not (first == _POOL_NAME or isinstance(first, _InboxConnection))
        return True


logging.getLogger("psycopg.pool").addFilter(_PoolNoise())


def _reason(exc: BaseException) -> str:
    """``exc`` in one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


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

    Outages: a claim that finds its pooled connection broken (the database
    restarted) before the handler ran takes another one, so a restart costs
    no event an attempt. While the database is unreachable a claim waits up
    to ``connect_timeout`` seconds for it, then fails with an
    :class:`~hubbub.inbox.InboxError` (the event is retried); the outage is
    logged once (WARNING), and its end (INFO).
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = DEFAULT_TABLE,
        keep: str | float | timedelta | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        max_connections: int = DEFAULT_CONNECTIONS,
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
        self._busy = f"{max(1, round(busy_timeout * 1000))}ms"  # lock_timeout's value
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        # Each event loop's connections: a loop's own (asyncio objects are bound to it).
        self._apools: dict[asyncio.AbstractEventLoop, _AsyncConnections] = {}
        self._pruned = time.monotonic()
        self._pruning = threading.Lock()
        self._down: str | None = None  # why the database is unreachable, while it is

    # -- claims -----------------------------------------------------------

    @contextmanager
    def claim(self, subscriber: str, event_id: str) -> Iterator[bool]:
        pool = self._ready()
        with ExitStack() as held:
            conn, new = self._begin(pool, held, subscriber, event_id)
            if not new:
                yield False
                return
            with self._running(conn, event_id):
                yield True
            try:
                held.close()  # COMMIT (the connection goes back to the pool)
            except psycopg.OperationalError as exc:
                raise self._lost(event_id, exc) from exc
        if self._prune_due():
            self._maybe_prune_soon()

    @contextmanager
    def _running(self, conn: Any, event_id: str) -> Iterator[None]:
        """The handler's run in ``conn``'s transaction (what :func:`connection` returns);
        the session ended under it is one line: its writes went with it."""
        token = bind(conn)
        try:
            yield
        except psycopg.OperationalError as exc:
            if not _broken(conn, exc):
                raise
            raise self._lost(event_id, exc) from exc
        finally:
            unbind(token)

    def _begin(
        self, pool: ConnectionPool[Any], held: ExitStack, subscriber: str, event_id: str
    ) -> tuple[Connection[Any], bool]:
        """A connection in the transaction that inserted the row, held by ``held``; and
        whether the row is new. A connection found broken (nothing ran yet) is replaced."""
        for tries in range(RECONNECTS + 1):
            attempt = ExitStack()
            conn = attempt.enter_context(self._connection(pool))
            try:
                attempt.enter_context(conn.transaction())
                new = self._take(conn, subscriber, event_id)
            except BaseException as exc:
                again = tries < RECONNECTS and _broken(conn, exc)
                try:
                    attempt.__exit__(type(exc), exc, exc.__traceback__)
                except Exception:
                    if not again:
                        raise
                if not again:
                    failure = self._failed(subscriber, event_id, exc, conn)
                    if failure is exc:
                        raise
                    raise failure from exc
                pool.check()  # the restart broke the idle ones too: replace them now
                continue
            held.enter_context(attempt)
            return conn, new
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def aclaim(self, subscriber: str, event_id: str) -> AsyncIterator[bool]:
        pool = await self._aready()
        async with AsyncExitStack() as held:
            conn, new = await self._abegin(pool, held, subscriber, event_id)
            if not new:
                yield False
                return
            with self._running(conn, event_id):
                yield True
            try:
                await held.aclose()  # COMMIT (the connection goes back to the pool)
            except psycopg.OperationalError as exc:
                raise self._lost(event_id, exc) from exc
        if self._prune_due():
            await asyncio.to_thread(self._maybe_prune_soon)

    async def _abegin(
        self, pool: _AsyncConnections, held: AsyncExitStack, subscriber: str, event_id: str
    ) -> tuple[AsyncConnection[Any], bool]:
        """:meth:`_begin` for an ``async def`` handler."""
        for tries in range(RECONNECTS + 1):
            attempt = AsyncExitStack()
            conn = await attempt.enter_async_context(pool.connection())
            try:
                await attempt.enter_async_context(conn.transaction())
                new = await self._atake(conn, subscriber, event_id)
            except BaseException as exc:
                again = tries < RECONNECTS and _broken(conn, exc)
                try:
                    await attempt.__aexit__(type(exc), exc, exc.__traceback__)
                except Exception:
                    if not again:
                        raise
                if not again:
                    failure = self._failed(subscriber, event_id, exc, conn)
                    if failure is exc:
                        raise
                    raise failure from exc
                await pool.drop_broken()  # the restart broke the idle ones too
                continue
            await held.enter_async_context(attempt)
            return conn, new
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self, conn: Connection[Any], subscriber: str, event_id: str) -> bool:
        """Insert the row in ``conn``'s transaction: True if it is new, False if handled."""
        try:
            cursor = conn.execute(self._claiming(subscriber, event_id))
        except errors.LockNotAvailable:
            raise InboxBusyError(subscriber, event_id, self.busy_timeout) from None
        cursor.nextset()  # the INSERT's result
        return cursor.rowcount == 1

    async def _atake(self, conn: AsyncConnection[Any], subscriber: str, event_id: str) -> bool:
        try:
            cursor = await conn.execute(self._claiming(subscriber, event_id))
        except errors.LockNotAvailable:
            raise InboxBusyError(subscriber, event_id, self.busy_timeout) from None
        cursor.nextset()
        return cursor.rowcount == 1

    def _claiming(self, subscriber: str, event_id: str) -> sql.Composed:
        """The claim's statements as one query, one round trip (bench/README.md, "The
        inbox": 5 round trips made 3): this transaction's ``lock_timeout`` while the row
        is inserted, then the session's again for the handler's own writes. With no
        parameters to bind, several statements may go in one query, so the values are
        quoted in it as literals."""
        return _CLAIM.format(
            busy=sql.Literal(self._busy),
            table=self._table,
            subscriber=sql.Literal(subscriber),
            event_id=sql.Literal(event_id),
        )

    # -- what went wrong, in one line ---------------------------------------

    def _failed(
        self, subscriber: str, event_id: str, exc: BaseException, conn: Any
    ) -> BaseException:
        """What a claim that could not start raises: ``exc`` itself when it is the inbox's
        own (busy, unreachable) or not the database's, else one line naming the table."""
        if isinstance(exc, (InboxError, InboxBusyError)) or not isinstance(exc, psycopg.Error):
            return exc
        if _broken(conn, exc):
            self._unreachable(exc)
        return InboxError(
            f"inbox: cannot claim event {event_id} for {subscriber} in table {self.table} "
            f"in PostgreSQL at {self._where()}: {_reason(exc)} (the event is retried)"
        )

    def _lost(self, event_id: str, exc: BaseException) -> InboxError:
        self._unreachable(exc)
        return InboxError(
            f"inbox: lost PostgreSQL at {self._where()} before event {event_id} was recorded as "
            f"handled ({_reason(exc)}): its transaction rolled back, so this attempt failed "
            "and the handler must run again"
        )

    def _no_connection(self, size: int, in_use: int) -> InboxError:
        """A claim found no free connection within ``connect_timeout``."""
        if self._down is None and size >= self.max_connections and in_use >= size:
            return InboxError(
                f"inbox: all {self.max_connections} connections to PostgreSQL at "
                f"{self._where()} are held by running handlers and none came free within "
                f"{self.connect_timeout:g} s (the event is retried): give the store "
                "max_connections at least the handlers that run at once (the subscribers' "
                "concurrency summed)"
            )
        why = f" ({self._down})" if self._down else ""
        return InboxError(
            f"inbox: no connection to PostgreSQL at {self._where()} within "
            f"{self.connect_timeout:g} s{why}: the event is retried (check that the database "
            "is up and reachable)"
        )

    def _where(self) -> str:
        """The database, for messages: host:port/dbname (no user, no password)."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        except psycopg.Error:
            return mask(self.dsn)
        host, port = info.get("host") or "localhost", info.get("port") or "5432"
        return f"{host}:{port}/{info.get('dbname') or ''}"

    def _unreachable(self, exc: BaseException) -> None:
        """Note (and log, once per outage) that the database cannot be reached."""
        reason = _reason(exc)
        with self._lock:
            first, self._down = self._down is None, reason
        if first:
            log.warning(
                "inbox: cannot reach PostgreSQL at %s (%s): claims wait up to %g s for it, "
                "then their events are retried",
                self._where(),
                reason,
                self.connect_timeout,
            )

    def _reachable(self) -> None:
        if self._down is None:
            return
        with self._lock:
            was, self._down = self._down, None
        if was is not None:
            log.info("inbox: PostgreSQL at %s is reachable again", self._where())

    # -- connecting -------------------------------------------------------

    def check(self) -> None:
        """Connect and create the table if it is missing; InboxError (one line) if that fails."""
        self._ready()

    @contextmanager
    def _connection(self, pool: ConnectionPool[Any]) -> Iterator[Connection[Any]]:
        """A pooled connection, or InboxError (one line) when none comes in time."""
        try:
            conn = pool.getconn(timeout=self.connect_timeout)
        except PoolTimeout:
            stats = pool.get_stats()
            size = stats.get("pool_size", 0)
            raise self._no_connection(size, size - stats.get("pool_available", 0)) from None
        try:
            yield conn
        finally:
            pool.putconn(conn)

    def _ready(self) -> ConnectionPool[Any]:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                self._create_table()
                store = self

                class _Connection(_InboxConnection):
                    @classmethod
                    def connect(cls, *args: Any, **kwargs: Any) -> Any:
                        try:
                            made = super().connect(*args, **kwargs)
                        except psycopg.OperationalError as exc:
                            store._unreachable(exc)
                            raise
                        store._reachable()
                        return made

                self._pool = ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.max_connections,
                    kwargs={"autocommit": True},
                    connection_class=_Connection,
                    name=_POOL_NAME,
                    open=False,
                    timeout=self.connect_timeout,
                )
                self._pool.open(wait=False)  # the table's connection just worked
            return self._pool

    async def _aready(self) -> _AsyncConnections:
        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is None:
            if self._pool is None:
                await asyncio.to_thread(self._ready)  # the table, and a clear error if not
            with self._lock:
                pool = self._apools.setdefault(loop, _AsyncConnections(self))
                # A loop that closed (a worker's own, once stopped) has no use for its
                # connections any more: closed here, on the next loop's first claim.
                gone = [other for other in self._apools if other.is_closed()]
                closing = [self._apools.pop(other) for other in gone]
            for old in closing:
                old.close_idle()
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
            raise InboxError(
                f"inbox: cannot use table {self.table} in PostgreSQL at {mask(self.dsn)}: "
                f"{_reason(exc)} (check the DSN, that the database is up, and that the user may "
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
        with self._connection(self._ready()) as conn:
            return self._delete(conn, keep)

    def _delete(self, conn: Connection[Any], keep: float) -> int:
        statement = sql.SQL(
            "DELETE FROM {} WHERE handled_at < now() - make_interval(secs => %s)"
        ).format(self._table)
        return conn.execute(statement, (keep,)).rowcount

    def _prune_due(self) -> bool:
        return self.keep is not None and time.monotonic() - self._pruned >= PRUNE_EVERY

    def _maybe_prune_soon(self) -> None:
        """Prune if it is time (after a claim): a failure is logged, not the event's."""
        try:
            self._prune_now()
        except (InboxError, psycopg.Error) as exc:
            log.warning("inbox: could not prune table %s: %s", self.table, _reason(exc))

    def _maybe_prune(self, conn: Connection[Any]) -> None:
        if self._prune_due() and self._pruning.acquire(blocking=False):
            try:
                self._pruned = time.monotonic()
                assert self.keep is not None
                self._delete(conn, self.keep)
            finally:
                self._pruning.release()

    def _prune_now(self) -> None:
        with self._connection(self._ready()) as conn:
            self._maybe_prune(conn)

    # -- reading and closing ----------------------------------------------

    def handled(self, subscriber: str) -> set[str]:
        """The ids of the events ``subscriber`` handled (rows kept so far)."""
        statement = sql.SQL("SELECT event_id FROM {} WHERE subscriber = %s").format(self._table)
        with self._connection(self._ready()) as conn:
            return {row[0] for row in conn.execute(statement, (subscriber,))}

    def close(self) -> None:
        """Close the connection pool and the idle async connections (a claim after it
        opens new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
            apools = list(self._apools.values())
            self._apools.clear()
        if pool is not None:
            pool.close()
        for apool in apools:
            apool.close_idle()

    async def aclose(self) -> None:
        """Close this event loop's async connections (idle ones: those in use close when
        their claim ends)."""
        pool = self._apools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            pool.close_idle()

    def __repr__(self) -> str:
        keep = "" if self.keep is None else f", keep={format_duration(self.keep)!r}"
        return f"PostgresStore({mask(self.dsn)!r}, table={self.table!r}{keep})"


def _broken(conn: Any, exc: BaseException) -> bool:
    """``exc`` came from ``conn`` being broken (the server ended the session)."""
    return isinstance(exc, psycopg.OperationalError) and bool(conn.broken or conn.closed)


class _AsyncConnections:
    """One event loop's connections for ``async def`` handlers' claims.

    A pool without background tasks: a connection is opened when a claim
    finds none idle (up to ``max_connections``), kept idle after, closed
    when found broken. Nothing is left pending on the loop, so a loop that
    stops (the worker's own, at shutdown) has nothing to cancel.
    """

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.idle: list[AsyncConnection[Any]] = []
        self.size = 0  # connections open (idle or in use) or being opened
        self.freed = asyncio.Condition()

    async def get(self) -> AsyncConnection[Any]:
        store = self.store
        loop = asyncio.get_running_loop()
        deadline = loop.time() + store.connect_timeout
        async with self.freed:
            while not self.idle and self.size >= store.max_connections:
                left = deadline - loop.time()
                try:
                    if left <= 0:
                        raise asyncio.TimeoutError
                    await asyncio.wait_for(self.freed.wait(), left)
                except asyncio.TimeoutError:  # TimeoutError itself from 3.11 on
                    raise store._no_connection(self.size, self.size - len(self.idle)) from None
            if self.idle:
                return self.idle.pop()
            self.size += 1
        try:
            return await self._connect(deadline)
        except BaseException:
            async with self.freed:
                self.size -= 1
                self.freed.notify()
            raise

    async def _connect(self, deadline: float) -> AsyncConnection[Any]:
        """A new connection, trying again until ``deadline`` while the database is down."""
        store = self.store
        loop = asyncio.get_running_loop()
        pause = _RECONNECT_PAUSE[0]
        while True:
            left = deadline - loop.time()
            try:
                conn = await psycopg.AsyncConnection.connect(
                    store.dsn, autocommit=True, connect_timeout=max(1, round(left))
                )
            except psycopg.OperationalError as exc:
                store._unreachable(exc)
                if deadline - loop.time() <= pause:
                    raise store._no_connection(self.size, 0) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RECONNECT_PAUSE[1])
                continue
            store._reachable()
            return conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection for one claim, taken back after it."""
        conn = await self.get()
        try:
            yield conn
        finally:
            await self.put(conn)

    async def put(self, conn: AsyncConnection[Any]) -> None:
        """Take ``conn`` back: idle again if it is sound (out of any transaction), else closed."""
        sound = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        async with self.freed:
            if sound:
                self.idle.append(conn)
            else:
                self.size -= 1
            self.freed.notify()
        if not sound:
            await conn.close()

    async def drop_broken(self) -> None:
        """Close the idle connections that the database ended (after a restart, all)."""
        async with self.freed:
            idle, self.idle = self.idle, []
        for conn in idle:
            try:
                await conn.execute("")
            except psycopg.Error:
                await conn.close()
                async with self.freed:
                    self.size -= 1
                    self.freed.notify()
                continue
            await self.put(conn)

    def close_idle(self) -> None:
        """Close the idle connections (from any thread, or with the loop closed)."""
        idle, self.idle = self.idle, []
        self.size -= len(idle)
        for conn in idle:
            _close_now(conn)


def _close_now(conn: AsyncConnection[Any]) -> None:
    """Close ``conn`` without its event loop: ``close()`` only hangs up, it awaits nothing."""
    closing = conn.close()
    try:
        closing.send(None)
    except StopIteration:
        return
    closing.close()  # it did wait for something (a newer psycopg): hang up directly
    conn.pgconn.finish()
