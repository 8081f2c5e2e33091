"""The inbox when its PostgreSQL restarts or goes down (a private cluster, never the machine's).

A restart ends every session: the connections an inbox keeps for its next
claims are all broken at once. A claim that finds its connection broken
before the handler ran has done nothing yet, so it takes another connection
instead of failing the event (a failure would cost an attempt, or
dead-letter the event of a subscriber with ``attempts: 1``). A database that
stays down is one clear line per outage, not one warning (and a traceback
fragment) per reconnection attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from fault_support import queue_depth, wait_for

from hubbub.envelope import Event
from hubbub.inbox import Inbox, InboxError, PostgresStore, connection
from hubbub.middleware import consuming
from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub
from hubbub.topology import apply, loader
from tests.support.postgres import PrivatePostgres
from tests.support.process import HubbubProcess, free_port, hubbub_command

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this module's own, free to stop and restart (~1 s to make)."""
    with PrivatePostgres() as private:
        yield private


@pytest.fixture
def database(postgres: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private cluster, up (a failed test may have left it down)."""
    if not postgres.running():
        postgres.start()
    yield postgres
    if not postgres.running():
        postgres.start()


def event(event_id: str) -> Event:
    return Event(topic="job.n", data={}, id=event_id, subscriber="s")


def warm(store: PostgresStore, connections: int) -> None:
    """Make the store hold ``connections`` connections (claims overlapping in time)."""
    barrier = threading.Barrier(connections)

    def hold(e: Event) -> None:
        barrier.wait(10)

    wrapped = consuming([Inbox(store)], hold)
    threads = [
        threading.Thread(target=wrapped, args=(event(f"warm-{n}"),)) for n in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


def test_connections_broken_by_a_restart_cost_no_event_an_attempt(database, caplog):
    store = PostgresStore(database.dsn, table="restart_sync", connect_timeout=5)
    try:
        warm(store, 5)
        database.restart()
        runs: list[str] = []
        wrapped = consuming([Inbox(store)], lambda e: runs.append(e.id))
        with caplog.at_level(logging.INFO):
            for n in range(8):  # more claims than broken connections
                wrapped(event(f"after-{n}"))
        assert runs == [f"after-{n}" for n in range(8)]
        assert store.handled("s") >= {f"after-{n}" for n in range(8)}
        assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text
    finally:
        store.close()


def test_an_async_claim_reconnects_after_a_restart_too(database):
    store = PostgresStore(database.dsn, table="restart_async", connect_timeout=5)
    runs: list[str] = []

    async def handler(e: Event) -> None:
        await connection().execute("SELECT 1")
        runs.append(e.id)

    async def run() -> None:
        wrapped = consuming([Inbox(store)], handler)
        release = asyncio.Event()

        async def hold(e: Event) -> None:
            await release.wait()

        held = consuming([Inbox(store)], hold)
        tasks = [asyncio.create_task(held(event(f"warm-{n}"))) for n in range(5)]
        await asyncio.sleep(0.5)
        release.set()
        await asyncio.gather(*tasks)
        await asyncio.to_thread(database.restart)
        for n in range(8):
            await wrapped(event(f"after-{n}"))
        await store.aclose()

    try:
        asyncio.run(run())
    finally:
        store.close()
    assert runs == [f"after-{n}" for n in range(8)]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_database_down_is_one_line_once_then_claims_work_when_it_is_back(database, caplog, kind):
    store = PostgresStore(database.dsn, table=f"down_{kind}", connect_timeout=1)
    runs: list[str] = []

    def claim(event_id: str) -> None:
        if kind == "sync":
            consuming([Inbox(store)], lambda e: runs.append(e.id))(event(event_id))
            return

        async def handler(e: Event) -> None:
            runs.append(e.id)

        async def once() -> None:
            try:
                await consuming([Inbox(store)], handler)(event(event_id))
            finally:
                await store.aclose()

        asyncio.run(once())

    try:
        claim("before")
        database.stop()
        errors: list[InboxError] = []
        with caplog.at_level(logging.INFO):
            for n in range(3):
                started = time.monotonic()
                with pytest.raises(InboxError) as caught:
                    claim(f"down-{n}")
                assert time.monotonic() - started < 4
                errors.append(caught.value)
            database.start()
            # The pool retries connecting with a backoff (1 s, doubling, jittered): a
            # claim in the first seconds after the outage may still fail, as a retry would.
            back = time.monotonic() + 15
            while True:
                try:
                    claim("after")
                    break
                except InboxError:
                    if time.monotonic() > back:
                        raise
        assert runs == ["before", "after"]
        message = str(errors[0])
        assert "\n" not in message, message
        assert message.startswith("inbox: no connection to PostgreSQL at 127.0.0.1:"), message
        assert "within 1 s" in message and "retried" in message, message
        inbox_lines = [r.getMessage() for r in caplog.records if r.name == "hubbub.inbox"]
        assert len([m for m in inbox_lines if "cannot reach PostgreSQL" in m]) == 1, inbox_lines
        assert any("reachable again" in m for m in inbox_lines), inbox_lines
        assert all("\n" not in m for m in inbox_lines), inbox_lines
        assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text
    finally:
        store.close()


APP = """
import os

from hubbub.inbox import connection

EFFECTS = os.environ["INBOX_FAULT_EFFECTS"]


def handler(event):
    connection().execute(f'INSERT INTO "{EFFECTS}" (event_id) VALUES (%s)', (event.id,))
"""


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f'SELECT count(DISTINCT event_id) FROM "{table}"').fetchone()
    return int(row[0]) if row else 0


def test_consume_through_a_database_restart_loses_nothing_and_dead_letters_nothing(
    broker_url, hub_name, tmp_path: Path, database
):
    """``attempts: 1``: an event whose claim failed on a broken connection would be
    dead-lettered at once. 200 events stream through 4 handler threads while the
    database restarts: each is handled once, and none is dead-lettered but those
    (4 at most) whose handler was mid-transaction, each named in one line."""
    effects = "consume_restart_effects"
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{effects}"')
        conn.execute(f'CREATE TABLE "{effects}" (event_id text NOT NULL)')
    (tmp_path / "inbox_restart_app.py").write_text(APP)
    spec: dict[str, Any] = {
        "hub": hub_name,
        "subscribers": {
            "work": {
                "handler": "inbox_restart_app:handler",
                "topics": ["job.#"],
                "concurrency": 4,
                "retry": {"attempts": 1},
                "idempotent": True,
            }
        },
    }
    topology = loader.from_mapping(spec)
    apply(topology, [broker_url])
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(spec))
    environment = {
        **os.environ,
        "HUBBUB_URL": broker_url,
        "HUBBUB_TOPOLOGY": str(file),
        "HUBBUB_LOG_LEVEL": "INFO",
        "INBOX_FAULT_EFFECTS": effects,
        "HUBBUB_INBOX_TABLE": "consume_restart_inbox",
    }
    argv = hubbub_command("consume", "--inbox", database.dsn)
    try:
        with HubbubProcess(argv, env=environment, cwd=tmp_path, metrics_port=free_port()) as proc:
            proc.wait_healthy()
            ids: list[str] = []

            def publish() -> None:
                with Publisher(hub_name, url=broker_url) as publisher:
                    for n in range(200):
                        ids.append(publisher.publish("job.n", {"n": n}))
                        time.sleep(0.01)

            publishing = threading.Thread(target=publish)
            publishing.start()
            wait_for(lambda: count(database.dsn, effects) >= 20, 15, "the stream flowing")
            database.restart()
            publishing.join(30)
            dead_letters = topology.names.dead_letter_queue("work")
            wait_for(
                lambda: (
                    count(database.dsn, effects) + queue_depth(broker_url, dead_letters)[0] >= 200
                ),
                30,
                "every event handled (or dead-lettered) after the restart",
            )
            proc.signal(signal.SIGTERM)
            assert proc.wait(30) == 0, proc.output()
            log = proc.output()
        dead = queue_depth(broker_url, topology.names.dead_letter_queue("work"))[0]
        with psycopg.connect(database.dsn) as conn:
            rows = conn.execute(f'SELECT event_id FROM "{effects}"').fetchall()
    finally:
        delete_hub(broker_url, topology)
    # Only an event whose handler was inside its transaction when the sessions
    # ended pays an attempt (its writes rolled back: it must run again); one
    # whose claim merely found its connection broken must not.
    dead_lettered = [line for line in log.splitlines() if "dead-lettered by work" in line]
    assert all("inbox: lost PostgreSQL at" in line for line in dead_lettered), log
    assert dead == len(dead_lettered) <= 4, log
    written = [r[0] for r in rows]
    assert len(written) == len(set(written)), "an effect written twice"
    assert len(written) + dead == 200 and set(written) <= set(ids), log
    assert "Traceback" not in log and "psycopg" not in log, log
