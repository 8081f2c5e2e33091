"""The inbox on the real broker and PostgreSQL: replays from the archive and the
dead-letter queue skip what a subscriber handled, and ``hubbub consume --inbox``."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import yaml
from core_support import consuming, depth, hubbub, terminate, wait_until

from hubbub import DontRetry
from hubbub.admin import Admin
from hubbub.admin.archive import Archive, Window
from hubbub.admin.filters import select
from hubbub.cli.consume import inbox_from
from hubbub.consumers.metrics import Metrics
from hubbub.envelope import Event
from hubbub.inbox import Inbox, PostgresStore
from hubbub.producers import Publisher
from hubbub.topology import loader

pytestmark = pytest.mark.integration


class Handler:
    """Counts runs per event id; raises DontRetry for the ids in ``broken``."""

    def __init__(self, broken: set[str] | None = None) -> None:
        self.broken = broken if broken is not None else set()
        self.runs: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.runs[event.id] += 1
        if event.id in self.broken:
            raise DontRetry("the bug of the day")


def spec(hub: str) -> dict[str, Any]:
    subscribers = {
        name: {
            "handler": "hubbub.actions:log",
            "topics": ["order.#"],
            "retry": {"attempts": 1},
            "idempotent": name == "idempotent",
        }
        for name in ("idempotent", "plain")
    }
    return {"hub": hub, "archive": {"retention": "1d"}, "subscribers": subscribers}


def test_a_replay_of_the_archive_runs_only_what_the_idempotent_subscriber_did_not_handle(
    declare, run_worker, hub_name, broker_url, postgres_dsn, inbox_table
):
    """A bad day re-driven: 20 events, 4 mishandled (dead-lettered); the whole window
    is replayed to both subscribers. The one with an inbox runs the 4 alone; the one
    without runs all 20 again (what the inbox saves it from)."""
    topology = declare(spec(hub_name))
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = [publisher.publish("order.paid", {"n": n}) for n in range(20)]
    mishandled = set(ids[::5])
    broken = set(mishandled)
    store = PostgresStore(postgres_dsn, table=inbox_table)
    idempotent, plain = Handler(broken), Handler()
    metrics = Metrics()
    worker = run_worker(
        topology,
        {"idempotent": idempotent},
        subscribers=["idempotent"],
        inbox=store,
        observer=metrics,
    )
    run_worker(topology, {"plain": plain}, subscribers=["plain"], inbox=store)  # not idempotent
    inbox = worker.inbox
    assert inbox is not None
    queues = [topology.names.queue(n) for n in ("idempotent", "plain")]
    wait_until(
        lambda: sum(idempotent.runs.values()) == 20 and sum(plain.runs.values()) == 20,
        30,
        "the day's events handled",
    )
    wait_until(lambda: all(depth(broker_url, q) == 0 for q in queues), 15, "queues drained")
    assert store.handled("idempotent") == set(ids) - mishandled
    broken.clear()  # the bug fixed; now the day is re-driven from the archive
    archive = Archive(topology, url=broker_url)
    window = Window(since=datetime.now(timezone.utc) - timedelta(hours=1))
    assert archive.replay("idempotent", window).copied == 20
    assert archive.replay("plain", window).copied == 20
    wait_until(
        lambda: sum(plain.runs.values()) == 40 and inbox.skipped == 16,
        30,
        "the replayed events handled or skipped",
    )
    wait_until(lambda: all(depth(broker_url, q) == 0 for q in queues), 15, "queues drained")
    assert {i: idempotent.runs[i] for i in ids} == {i: 2 if i in mishandled else 1 for i in ids}
    assert set(plain.runs.values()) == {2}
    assert store.handled("idempotent") == set(ids)
    skipped = metrics.registry.get_sample_value(
        "hubbub_events_skipped_total", {"subscriber": "idempotent", "topic": "order.paid"}
    )
    assert skipped == 16
    store.close()


def test_a_dead_letter_replay_runs_what_failed_and_skips_what_was_handled_meanwhile(
    declare, run_worker, hub_name, broker_url, postgres_dsn, inbox_table
):
    """An event dead-lettered by one attempt, then handled through a second copy
    (republished by its producer with the same id): the dead-letter replay skips it.
    The Inbox is a middleware here, as code can give it (to a subscriber not marked
    idempotent in the file, and once only to one marked so)."""
    topology = declare(spec(hub_name))
    broken: set[str] = set()
    store = PostgresStore(postgres_dsn, table=inbox_table)
    inbox = Inbox(store)
    handler = Handler(broken)
    run_worker(topology, {"idempotent": handler}, subscribers=["idempotent"], middleware=[inbox])
    with Publisher(hub_name, url=broker_url) as publisher:
        broken.add("order-1")
        publisher.publish("order.paid", {"n": 1}, message_id="order-1")
        publisher.publish("order.paid", {"n": 2}, message_id="order-2")
        dlq = topology.names.dead_letter_queue("idempotent")
        wait_until(lambda: depth(broker_url, dlq) == 1, 15, "order-1 dead-lettered")
        broken.clear()
        publisher.publish("order.paid", {"n": 1}, message_id="order-1")  # sent again
        wait_until(lambda: handler.runs["order-1"] == 2, 15, "order-1 handled the second time")
    replayed = Admin(topology, url=broker_url).replay("idempotent", select())
    assert replayed.moved == 1
    wait_until(lambda: inbox.skipped == 1, 15, "the replayed copy skipped")
    assert handler.runs == Counter({"order-1": 2, "order-2": 1})
    store.close()


@pytest.mark.same_on_every_version(reason="the CLI and PostgreSQL: the broker only carries")
def test_consume_with_inbox_runs_a_resent_event_once(
    declare, hub_name, broker_url, postgres_dsn, tmp_path
):
    """``--inbox`` uses the default table (hubbub_inbox): ids unique to this run."""
    declare(spec(hub_name))
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump(spec(hub_name)))
    once, twice = f"{hub_name}-1", f"{hub_name}-2"
    with Publisher(hub_name, url=broker_url) as publisher:
        for _ in range(3):
            publisher.publish("order.paid", {"n": 1}, message_id=once)
        publisher.publish("order.paid", {"n": 2}, message_id=twice)
    queue = f"{hub_name}.idempotent"
    try:
        with consuming(
            "-f", str(topology), "--subscriber", "idempotent",
            "--inbox", postgres_dsn, "--inbox-keep", "30d",
            url=broker_url, cwd=tmp_path, HUBBUB_LOG_LEVEL="INFO",
        ) as process:  # fmt: skip
            wait_until(
                lambda: process.poll() is not None or depth(broker_url, queue) == 0,
                30,
                "the four copies handled or skipped",
            )
            stderr = terminate(process)
        assert process.returncode == 0, stderr
        assert stderr.count(f"event {once} (order.paid) already handled by idempotent") == 2
        assert stderr.count("already handled") == 2, stderr
        assert _inbox_rows(postgres_dsn, [once, twice]) == [once, twice]
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM hubbub_inbox WHERE event_id = ANY(%s)", ([once, twice],))


def _inbox_rows(dsn: str, ids: list[str]) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event_id FROM hubbub_inbox WHERE subscriber = 'idempotent' "
            "AND event_id = ANY(%s) ORDER BY event_id",
            (ids,),
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.same_on_every_version(reason="the CLI and PostgreSQL: the broker only carries")
def test_consume_with_an_unreachable_inbox_stops_before_consuming_in_one_line(
    declare, hub_name, broker_url, tmp_path
):
    declare(spec(hub_name))
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump(spec(hub_name)))
    result = hubbub(
        "consume", "-f", str(topology), "--inbox", "postgresql://app:s3cret@127.0.0.1:1/shop",
        url=broker_url, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: inbox: cannot use table hubbub_inbox")
    assert "s3cret" not in result.stderr
    missing = hubbub("consume", "-f", str(topology), url=broker_url, cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: subscriber idempotent is idempotent, so its consumer needs an inbox to record "
        "the events it handled: give 'hubbub consume --inbox DSN' (PostgreSQL), or "
        "Hub(..., inbox=PostgresStore(dsn)) in code (see docs/inbox.md)"
    )
    unused = hubbub(
        "consume", "-f", str(topology), "--subscriber", "plain", "--inbox",
        "postgresql://127.0.0.1:1/x", url=broker_url, cwd=tmp_path,
    )  # fmt: skip
    assert "--inbox is given but no subscriber run here is idempotent" in unused.stderr
    keep_alone = hubbub("consume", "-f", str(topology), "--inbox-keep", "1d", url=broker_url)
    assert keep_alone.returncode == 1
    assert keep_alone.stderr.strip() == (
        "error: --inbox-keep needs --inbox (the inbox's PostgreSQL DSN)"
    )


@pytest.mark.same_on_every_version(reason="a line the command prints: the broker only counts")
def test_an_archive_replay_to_a_subscriber_not_idempotent_says_what_that_means(
    declare, hub_name, broker_url, tmp_path
):
    declare(spec(hub_name))
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(spec(hub_name)))
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("order.paid", {"n": 1})
    note = "note: plain is not idempotent, so an event it handled already is handled again"
    for to, noted in (("plain", True), ("idempotent", False)):
        result = hubbub(
            "archive", "replay", "-f", str(file), "--to", to, "--since", "1h", "--dry-run",
            url=broker_url,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (note.replace("plain", to) in result.stdout) is noted, result.stdout
        assert "would replay 1 event(s)" in result.stdout


@pytest.mark.same_on_every_version(reason="PostgreSQL and the worker's event loop")
def test_an_async_idempotent_handler_runs_once_per_id_and_the_worker_stops_clean(
    declare, hub_name, broker_url, postgres_dsn, inbox_table, caplog
):
    """An ``async def`` handler on the worker's own loop, with the PostgreSQL store:
    resent ids skipped, and nothing of the store's left on the loop when the worker
    closes it (no asyncio errors at exit). Five first claims at once make one pool
    for the loop, not five (four of them never closed, their connections leaked)."""
    import asyncio
    import gc
    import logging

    from hubbub.consumers.worker import Worker
    from hubbub.inbox import connection

    topology = declare(spec(hub_name))
    store = PostgresStore(postgres_dsn, table=inbox_table)
    runs: Counter[str] = Counter()

    async def handler(event: Event) -> None:
        await connection().execute("SELECT 1")
        runs[event.id] += 1
        await asyncio.sleep(0.01)

    with Publisher(hub_name, url=broker_url) as publisher:  # there when the tasks start
        ids = [publisher.publish("order.paid", {"n": n}) for n in range(10)]
        for event_id in ids[:3]:
            publisher.publish("order.paid", {}, message_id=event_id)
    worker = Worker(
        topology,
        {"idempotent": handler},
        url=broker_url,
        subscribers=["idempotent"],
        inbox=store,
        concurrency=5,  # five first claims at once on the loop
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    with caplog.at_level(logging.WARNING):
        thread.start()
        assert worker.consuming.wait(15)
        queue = topology.names.queue("idempotent")
        inbox = worker.inbox
        assert inbox is not None
        wait_until(lambda: inbox.skipped == 3 and depth(broker_url, queue) == 0, 15, "handled")
        worker.stop()
        thread.join(15)
        assert not thread.is_alive()
        gc.collect()  # what the store left on the closed loop goes now, and says so
    store.close()
    assert runs == Counter(dict.fromkeys(ids, 1))
    ours = ("hubbub", "asyncio", "psycopg")
    bad = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(ours)]
    assert not bad, [r.getMessage() for r in bad]


@pytest.mark.same_on_every_version(reason="PostgreSQL and the command line's options only")
def test_consume_sizes_the_inbox_pool_for_the_idempotent_handlers_that_run_at_once(
    postgres_dsn, inbox_table
):
    subscribers = {
        "a": {"handler": "m:f", "topics": ["t"], "idempotent": True, "concurrency": 25},
        "b": {"handler": "m:f", "topics": ["t"], "idempotent": True, "concurrency": 10},
        "c": {"handler": "m:f", "topics": ["t"], "concurrency": 100},  # no inbox
    }
    topology = loader.from_mapping({"hub": "shop", "subscribers": subscribers})

    def size(names: list[str], concurrency: int | None) -> int:
        store = inbox_from(topology, names, concurrency, postgres_dsn, inbox_table, None)
        assert isinstance(store, PostgresStore)
        store.close()
        return store.max_connections

    assert size(["a", "b", "c"], None) == 35
    assert size(["a", "b"], 40) == 80
    assert size(["b"], None) == 20  # never below the store's default


def test_a_hubs_inbox_reaches_the_worker_it_builds_and_the_live_hub_has_one_of_its_own(
    broker_url, hub_name
):
    """``Hub(inbox=...)`` goes to ``hub.worker()``; a ``LiveHub`` gives its idempotent
    subscribers a MemoryStore when given none. Each runs a resent id once."""
    from hubbub import Hub
    from hubbub.inbox import MemoryStore
    from hubbub.testing import LiveHub
    from hubbub.testing.broker import delete_hub

    store = MemoryStore()
    hub = Hub(hub_name, url=broker_url, inbox=store)
    runs: list[str] = []
    hub.subscriber("once", topics=["order.#"], idempotent=True)(lambda e: runs.append(e.id))
    hub.apply()
    worker = hub.worker()
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        thread.start()
        assert worker.consuming.wait(15)
        for _ in range(2):
            hub.publish("order.paid", {}, message_id="o-1")
        inbox = worker.inbox
        assert inbox is not None
        wait_until(lambda: inbox.skipped == 1, 15, "the resent id skipped")
        assert runs == ["o-1"] and store.handled("once") == {"o-1"}
    finally:
        worker.stop()
        thread.join(15)
        hub.close()
        delete_hub(broker_url, hub.topology)

    live = LiveHub(f"{hub_name}-live", url=broker_url)
    live_runs: list[str] = []
    live.subscriber("once", topics=["order.#"], idempotent=True)(lambda e: live_runs.append(e.id))
    try:
        live.start()
        for _ in range(2):
            live.publish("order.paid", {}, message_id="o-1")
        live.run_until_idle()
        assert live_runs == ["o-1"]
        assert isinstance(live.inbox, MemoryStore) and live.inbox.handled("once") == {"o-1"}
    finally:
        live.close()
        delete_hub(broker_url, live.topology)
