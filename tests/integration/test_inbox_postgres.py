"""The inbox's PostgreSQL store against the machine's real PostgreSQL (no broker)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest

from hubbub.envelope import Event
from hubbub.inbox import Inbox, InboxBusyError, InboxError, PostgresStore, connection
from hubbub.middleware import consuming

pytestmark = [
    pytest.mark.integration,
    pytest.mark.same_on_every_version(reason="PostgreSQL only: no broker in these tests"),
]


@pytest.fixture
def store(postgres_dsn: str, inbox_table: str) -> Any:
    made = PostgresStore(postgres_dsn, table=inbox_table, busy_timeout=5)
    yield made
    made.close()


def event(event_id: str, subscriber: str = "s") -> Event:
    return Event(topic="order.paid", data={}, id=event_id, subscriber=subscriber)


def rows(dsn: str, table: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return sorted(conn.execute(f'SELECT subscriber, event_id FROM "{table}"').fetchall())


def effects_table(dsn: str, table: str) -> str:
    name = f"{table}_effects"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (event_id text)')
    return name


def test_a_handled_event_is_recorded_and_skipped_when_it_comes_again(
    store, postgres_dsn, inbox_table
):
    inbox = Inbox(store)
    runs: list[str] = []
    handler = consuming([inbox], lambda e: runs.append(e.id))
    handler(event("e-1"))
    handler(event("e-1"))
    handler(event("e-1", subscriber="other"))
    assert runs == ["e-1", "e-1"]  # once per subscriber
    assert inbox.skipped == 1
    assert rows(postgres_dsn, inbox_table) == [("other", "e-1"), ("s", "e-1")]
    assert store.handled("s") == {"e-1"}


def test_the_handlers_writes_commit_with_the_record_or_roll_back_with_it(
    store, postgres_dsn, inbox_table
):
    effects = effects_table(postgres_dsn, inbox_table)

    def handler(e: Event) -> None:
        connection().execute(f'INSERT INTO "{effects}" VALUES (%s)', (e.id,))
        if e.data.get("fail"):
            raise ValueError("after writing")

    wrapped = consuming([Inbox(store)], handler)
    with pytest.raises(ValueError):
        wrapped(Event(topic="t", data={"fail": True}, id="e-1", subscriber="s"))
    wrapped(Event(topic="t", data={}, id="e-1", subscriber="s"))  # the retry
    wrapped(Event(topic="t", data={}, id="e-1", subscriber="s"))  # a replay
    with psycopg.connect(postgres_dsn) as conn:
        written = conn.execute(f'SELECT event_id FROM "{effects}"').fetchall()
        conn.execute(f'DROP TABLE "{effects}"')
        conn.commit()
    assert written == [("e-1",)]  # not the failed attempt's, not the replay's
    assert rows(postgres_dsn, inbox_table) == [("s", "e-1")]


def test_two_replicas_given_the_same_event_at_once_run_it_once(postgres_dsn, inbox_table):
    """Two stores (two pools, as two consumer processes have) share the table."""
    stores = [PostgresStore(postgres_dsn, table=inbox_table, busy_timeout=5) for _ in range(2)]
    runs: list[str] = []
    entered = threading.Event()

    def handler(e: Event) -> None:
        runs.append(threading.current_thread().name)
        entered.set()
        time.sleep(0.5)  # the other replica's claim arrives meanwhile

    wrapped = [consuming([Inbox(s)], handler) for s in stores]
    first = threading.Thread(target=wrapped[0], args=(event("e-1"),), name="first")
    first.start()
    assert entered.wait(10)
    started = time.monotonic()
    wrapped[1](event("e-1"))  # waits for the first replica's commit, then skips
    waited = time.monotonic() - started
    first.join(10)
    for s in stores:
        s.close()
    assert runs == ["first"]
    assert 0.2 < waited < 5, waited


def test_an_attempt_finding_the_event_locked_past_busy_timeout_is_retried_later(
    postgres_dsn, inbox_table
):
    store = PostgresStore(postgres_dsn, table=inbox_table, busy_timeout=0.3)
    try:
        with store.claim("s", "e-1") as new:  # a written-off handler still running
            assert new
            started = time.monotonic()
            with pytest.raises(InboxBusyError) as caught:
                consuming([Inbox(store)], lambda e: None)(event("e-1"))
            assert 0.25 < time.monotonic() - started < 3
        assert caught.value.after == pytest.approx(0.3)
    finally:
        store.close()


def test_the_lock_timeout_does_not_reach_the_handlers_own_writes(store):
    seen: list[str] = []

    def handler(e: Event) -> None:
        seen.append(connection().execute("SHOW lock_timeout").fetchone()[0])

    consuming([Inbox(store)], handler)(event("e-1"))
    with psycopg.connect(store.dsn) as conn:
        default = conn.execute("SHOW lock_timeout").fetchone()[0]
    assert seen == [default]


def test_an_async_handler_shares_an_async_transaction(store, postgres_dsn, inbox_table):
    effects = effects_table(postgres_dsn, inbox_table)
    inbox = Inbox(store)

    async def handler(e: Event) -> None:
        conn = connection()
        assert isinstance(conn, psycopg.AsyncConnection)
        await conn.execute(f'INSERT INTO "{effects}" VALUES (%s)', (e.id,))
        if e.data.get("fail"):
            raise ValueError("after writing")

    async def run() -> None:
        wrapped = consuming([inbox], handler)
        with pytest.raises(ValueError):
            await wrapped(Event(topic="t", data={"fail": True}, id="e-1", subscriber="s"))
        await wrapped(Event(topic="t", data={}, id="e-1", subscriber="s"))
        await wrapped(Event(topic="t", data={}, id="e-1", subscriber="s"))
        await store.aclose()

    asyncio.run(run())
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        written = conn.execute(f'SELECT event_id FROM "{effects}"').fetchall()
        conn.execute(f'DROP TABLE "{effects}"')
    assert written == [("e-1",)] and inbox.skipped == 1


def test_keep_prunes_rows_older_than_it(postgres_dsn, inbox_table):
    store = PostgresStore(postgres_dsn, table=inbox_table, keep="1h")
    try:
        handler = consuming([Inbox(store)], lambda e: None)
        for n in range(3):
            handler(event(f"e-{n}"))
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                f"UPDATE \"{inbox_table}\" SET handled_at = now() - interval '2 hours' "
                "WHERE event_id <> 'e-2'"
            )
        assert store.prune() == 2
        assert store.handled("s") == {"e-2"}
    finally:
        store.close()


def test_prune_without_keep_says_what_to_give(store):
    with pytest.raises(InboxError, match="older_than"):
        store.prune()


def test_replicas_starting_together_create_the_table_once_without_error(postgres_dsn, inbox_table):
    stores = [PostgresStore(postgres_dsn, table=inbox_table) for _ in range(4)]
    errors: list[BaseException] = []

    def check(s: PostgresStore) -> None:
        try:
            s.check()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=check, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for s in stores:
        s.close()
    assert errors == []


def test_an_unreachable_database_is_one_line_with_the_password_masked(inbox_table):
    store = PostgresStore(
        "postgresql://app:s3cret@127.0.0.1:1/shop", table=inbox_table, connect_timeout=2
    )
    with pytest.raises(InboxError) as caught:
        consuming([Inbox(store)], lambda e: None)(event("e-1"))
    message = str(caught.value)
    assert "\n" not in message and "s3cret" not in message
    assert message.startswith(f"inbox: cannot use table {inbox_table} in PostgreSQL at ")
    assert "app:***@127.0.0.1:1/shop" in message


def test_a_bad_table_name_is_refused_when_built():
    with pytest.raises(InboxError, match=r"'schema\.table'"):
        PostgresStore("postgresql:///x", table="a.b.c")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_more_handlers_than_connections_is_named_with_the_fix_when_none_comes_free(
    postgres_dsn, inbox_table, kind
):
    """Two connections, both held by running handlers: a third claim waits
    ``connect_timeout``, then says the pool is too small (not that the database is down)."""
    store = PostgresStore(postgres_dsn, table=inbox_table, max_connections=2, connect_timeout=0.5)
    store.check()

    def claims_while_two_are_held() -> InboxError:
        held = threading.Barrier(3)
        done = threading.Event()

        def hold(e: Event) -> None:
            held.wait(10)
            done.wait(10)

        holders = [
            threading.Thread(target=consuming([Inbox(store)], hold), args=(event(f"held-{n}"),))
            for n in range(2)
        ]
        for thread in holders:
            thread.start()
        held.wait(10)
        try:
            with pytest.raises(InboxError) as caught:
                if kind == "sync":
                    consuming([Inbox(store)], lambda e: None)(event("third"))
                else:
                    asyncio.run(_async_pool_of_two_then_a_third(store))
            return caught.value
        finally:
            done.set()
            for thread in holders:
                thread.join(10)

    try:
        message = str(claims_while_two_are_held())
    finally:
        store.close()
    assert "\n" not in message, message
    assert message.startswith("inbox: all 2 connections to PostgreSQL at "), message
    assert "max_connections" in message and "within 0.5 s" in message, message


async def _async_pool_of_two_then_a_third(store: PostgresStore) -> None:
    """An async handler's claims have a pool of their own (per event loop): fill it."""
    release = asyncio.Event()
    entered = 0

    async def hold(e: Event) -> None:
        nonlocal entered
        entered += 1
        await release.wait()

    held = [asyncio.create_task(consuming([Inbox(store)], hold)(event(f"a-{n}"))) for n in range(2)]
    try:
        while entered < 2:
            await asyncio.sleep(0.01)

        async def nothing(e: Event) -> None:
            return None

        await consuming([Inbox(store)], nothing)(event("a-third"))
    finally:
        release.set()
        await asyncio.gather(*held)
        await store.aclose()


def test_an_async_claim_leaves_nothing_running_on_its_loop(postgres_dsn, inbox_table):
    """A worker stops its own event loop without closing the store: whatever the
    store left on the loop would be cancelled mid-way ("Task was destroyed but it
    is pending!") or keep asyncio.run from returning."""
    store = PostgresStore(postgres_dsn, table=inbox_table)

    async def handler(e: Event) -> None:
        await connection().execute("SELECT 1")

    async def run() -> set[asyncio.Task[Any]]:
        await consuming([Inbox(store)], handler)(event("e-1"))
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    try:
        left = asyncio.run(run())
    finally:
        store.close()
    assert left == set()
    assert store.handled("s") == {"e-1"}


def test_the_connections_of_an_ended_event_loop_are_closed_not_left_to_the_collector(
    postgres_dsn, inbox_table
):
    """Every ``asyncio.run`` (every worker run, every test) is a loop of its own, with
    connections of its own: a loop that ended has them closed (by the next loop's
    first claim, or the store's close), not dropped open for the garbage collector
    ("connection was deleted while still open")."""
    import gc
    import warnings

    dsn = f"{postgres_dsn}?application_name={inbox_table}"
    store = PostgresStore(dsn, table=inbox_table)

    async def handler(e: Event) -> None:
        await connection().execute("SELECT 1")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            for n in range(4):
                asyncio.run(consuming([Inbox(store)], handler)(event(f"e-{n}")))  # no aclose()
                gc.collect()
            with psycopg.connect(postgres_dsn) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (inbox_table,),
                ).fetchone()
            assert store.handled("s") == {f"e-{n}" for n in range(4)}
        finally:
            store.close()
        gc.collect()
    assert row is not None and row[0] <= 2  # the pool's one, and the last loop's one
    unclosed = [str(w.message) for w in caught if "deleted while still open" in str(w.message)]
    assert unclosed == []
