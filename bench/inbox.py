"""The inbox's cost on the consume path: events/s without it, in memory, in PostgreSQL.

Prints figures; it is not a test. Against the broker in ``--url`` (default
``HUBBUB_URL`` or the local one) and the PostgreSQL in ``--dsn`` it
consumes ``--events`` events already queued for one subscriber, with a
trivial handler, through a :class:`~hubbub.consumers.worker.Worker` in this
process, at each ``--concurrency`` (handler threads), as:

- ``none``: a subscriber not marked idempotent (no inbox);
- ``memory``: an idempotent one with a :class:`~hubbub.inbox.MemoryStore`;
- ``postgres``: the same with a :class:`~hubbub.inbox.PostgresStore`;
- ``postgres+write``: the same, the handler inserting one row of its own
  through :func:`hubbub.inbox.connection` (the inbox's transaction: the
  realistic case);
- ``skip``: events the PostgreSQL inbox handled already, delivered again
  with the same ids (every one is skipped, the handler never runs).

With ``--candidate module:Class`` (a PostgresStore-compatible class, e.g. a
change to the store being weighed), the three PostgreSQL kinds also run
with it (``candidate``, ``candidate+write``, ``candidate skip``), on a
table of their own, in the same rounds.

Every figure is the median of ``--rounds`` runs. Inside a round the kinds
run one after the other in an order that rotates from round to round (and
between concurrencies), so a burst of load elsewhere on a shared machine
does not land on one kind only. Each run fills the subscriber's queue first
(not timed), then times first handler start .. last ack (the observer's
``started`` and ``settled``); the 1-minute load average at each run's end
and the client process's CPU per event are shown beside the rate. Before
the rounds, one PostgreSQL round trip, one claim alone (no broker) and each
statement of a claim are timed, to say where the time goes.

Everything the run creates (hub, queues, tables) is deleted at the end.

    .venv/bin/python -m bench.inbox                              # 20,000 events, x1 and x8
    .venv/bin/python -m bench.inbox --events 2000 --rounds 1     # quick
    PYTHONPATH=/somewhere .venv/bin/python -m bench.inbox --candidate mymodule:FasterStore
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

import hubbub.inbox
from bench import perfkit
from bench.hubbub_consume import Clock
from hubbub import envelope
from hubbub.consumers.worker import Worker
from hubbub.envelope import Event
from hubbub.inbox import InboxStore, MemoryStore, PostgresStore
from hubbub.message import Outbound
from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader
from hubbub.topology.model import Topology

DSN = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = ("none", "memory", "postgres", "postgres+write", "skip")
MEANING = {
    "none": "no inbox (subscriber not idempotent)",
    "memory": "inbox, `MemoryStore`",
    "postgres": "inbox, `PostgresStore`",
    "postgres+write": "inbox, `PostgresStore`, handler inserts 1 row via `connection()`",
    "skip": "replay: every event already handled, skipped (`PostgresStore`)",
    "candidate": "inbox, the candidate store",
    "candidate+write": "inbox, the candidate store, handler inserts 1 row via `connection()`",
    "candidate skip": "replay: every event already handled, skipped (the candidate store)",
}
CANDIDATE_KINDS = ("candidate", "candidate+write", "candidate skip")
PLAIN, IDEMPOTENT = "plain", "idem"


@dataclass
class Run:
    rate: float
    cpu_us: float
    load: float


@dataclass
class Bench:
    url: str
    dsn: str
    events: int
    topology: Topology
    store: PostgresStore
    effects: str
    candidate: PostgresStore | None = None
    #: Ids each PostgreSQL store handled before the rounds: what its skip runs deliver again.
    handled: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = field(default_factory=perfkit.body)

    def publish(self, subscriber: str, ids: Sequence[str]) -> None:
        """Queue one event per id for ``subscriber`` (on its topic, ``bench.<subscriber>``)."""
        exchange = self.topology.names.exchange
        topic = f"bench.{subscriber}"
        with Publisher(self.topology.hub, url=self.url, window=5000) as publisher:
            perfkit.send_confirmed(
                publisher,
                (
                    Outbound(exchange, topic, envelope.message(topic, self.body, message_id=i))
                    for i in ids
                ),
            )

    def run(self, kind: str, concurrency: int) -> Run:
        """Fill the queue ``kind`` consumes, then time consuming all of it."""
        candidate = kind.startswith("candidate")
        if kind.endswith("skip"):
            ids = self.handled["candidate" if candidate else "postgres"]
        else:
            ids = [envelope.new_id() for _ in range(self.events)]
        subscriber = PLAIN if kind == "none" else IDEMPOTENT
        self.publish(subscriber, ids)
        store: InboxStore | None = {
            "none": None,
            "memory": MemoryStore(),
        }.get(kind, self.candidate if candidate else self.store)
        handler = self.write if kind.endswith("+write") else noop
        return consume(self, subscriber, handler, store, concurrency, len(ids))

    def write(self, event: Event) -> None:
        """What an idempotent handler does: one row of its own, in the inbox's transaction."""
        hubbub.inbox.connection().execute(
            sql.SQL("INSERT INTO {} (event_id, user_id, email) VALUES (%s, %s, %s)").format(
                sql.Identifier(self.effects)
            ),
            (event.id, event.data["user_id"], event.data["email"]),
        )


def noop(event: Event) -> None:
    return None


def consume(
    bench: Bench,
    subscriber: str,
    handler: Callable[[Event], None],
    store: InboxStore | None,
    concurrency: int,
    count: int,
) -> Run:
    clock = Clock(count)
    worker = Worker(
        bench.topology,
        {subscriber: handler},
        url=bench.url,
        subscribers=[subscriber],
        concurrency=concurrency,
        observer=clock,
        inbox=store,
        name="hubbub bench inbox",
    )

    def stop_when_done() -> None:
        clock.done.wait()
        worker.stop()

    threading.Thread(target=stop_when_done, daemon=True).start()
    worker.run()
    cpu = perfkit.cpu() - clock.cpu
    seconds = clock.last - clock.first
    if clock.settled_count != count:
        raise RuntimeError(f"{subscriber}: {clock.settled_count} of {count} events settled")
    return Run(count / seconds, cpu / count * 1e6, os.getloadavg()[0])


def topology(hub: str) -> Topology:
    """Two subscribers alike but for ``idempotent``, each on a topic of its own."""
    return loader.from_mapping(
        {
            "hub": hub,
            "subscribers": {
                PLAIN: {"handler": "x:y", "topics": [f"bench.{PLAIN}"]},
                IDEMPOTENT: {
                    "handler": "x:y",
                    "topics": [f"bench.{IDEMPOTENT}"],
                    "idempotent": True,
                },
            },
        }
    )


def probes(label: str, dsn: str, store: PostgresStore, count: int) -> None:
    """Time, without the broker: a PostgreSQL round trip, and a claim alone (new, then skip)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT 1")
        started = time.perf_counter()
        for _ in range(count):
            conn.execute("SELECT 1")
        trip = (time.perf_counter() - started) / count
    ids = [envelope.new_id() for _ in range(count)]
    claimed = _claims(store, ids)
    skipped = _claims(store, ids)
    print(
        f"PostgreSQL round trip (SELECT 1): {trip * 1e6:.0f} µs; one {label} claim alone, "
        f"one thread, no broker: new {claimed * 1e6:.0f} µs ({1 / claimed:,.0f}/s), "
        f"already handled {skipped * 1e6:.0f} µs ({1 / skipped:,.0f}/s)"
    )


#: The statements of one PostgresStore claim, as hubbub/inbox/postgres.py sends them today.
STEPS = (
    ("BEGIN", "BEGIN", False),
    ("set_config", "SELECT set_config('lock_timeout', '10000ms', true)", False),
    (
        "INSERT",
        "INSERT INTO {} (subscriber, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        True,
    ),
    ("SET LOCAL", "SET LOCAL lock_timeout TO DEFAULT", False),
    ("COMMIT", "COMMIT", False),
)


def steps(dsn: str, table: str, count: int) -> None:
    """Time a claim's statements one by one on a plain connection: new ids, then again."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = [envelope.new_id() for _ in range(count)]
        queries = [
            (name, sql.SQL(text).format(sql.Identifier(table)), i) for name, text, i in STEPS
        ]
        for what in ("new", "already handled"):
            took = dict.fromkeys((name for name, _, _ in STEPS), 0.0)
            for event_id in ids:
                for name, query, insert in queries:
                    started = time.perf_counter()
                    conn.execute(query, ("steps", event_id) if insert else None)
                    took[name] += time.perf_counter() - started
            each = ", ".join(f"{name} {t / count * 1e6:.0f}" for name, t in took.items())
            total = sum(took.values()) / count * 1e6
            print(f"a claim's statements one by one, {what}: {each} µs (sum {total:.0f} µs)")


def _claims(store: InboxStore, ids: Sequence[str]) -> float:
    started = time.perf_counter()
    for event_id in ids:
        with store.claim("probe", event_id):
            pass
    return (time.perf_counter() - started) / len(ids)


def create_effects(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (event_id text PRIMARY KEY, user_id bigint, email text, "
                "created_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(table))
        )


def drop(dsn: str, *tables: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in tables:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def rotated(kinds: Sequence[str], by: int) -> list[str]:
    by %= len(kinds)
    return [*kinds[by:], *kinds[:by]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="broker URL (default HUBBUB_URL or local)")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("HUBBUB_TEST_POSTGRES", DSN),
        help=f"PostgreSQL for the inbox (HUBBUB_TEST_POSTGRES or {DSN})",
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per run")
    parser.add_argument("--concurrency", default="1,8", help="handler threads to try (1,8)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"subset of {','.join(KINDS)}")
    parser.add_argument(
        "--candidate", default=None, help="module:Class, a PostgresStore-like store to run too"
    )
    args = parser.parse_args()
    url = perfkit.url_of(args.url)
    levels = [int(v) for v in args.concurrency.split(",")]
    kinds = [k for k in KINDS if k in args.kinds.split(",")]
    if args.candidate:
        kinds += CANDIDATE_KINDS
    try:
        psycopg.connect(args.dsn, connect_timeout=5).close()
    except psycopg.Error as exc:
        sys.exit(f"bench.inbox: no PostgreSQL at {args.dsn}: {' '.join(str(exc).split())}")
    hub = unique_name("bench-inbox")
    table = hub.replace("-", "_").replace(".", "_")
    effects = f"{table}_effects"
    print(
        f"load average before: {_load()}, {os.cpu_count()} CPUs; "
        f"{args.events:,} events per run, concurrency {args.concurrency}, "
        f"median of {args.rounds}; command: python -m bench.inbox {' '.join(sys.argv[1:])}"
    )
    declared = topology(hub)
    apply(declared, [url])
    store = PostgresStore(args.dsn, table=table, max_connections=max(levels) + 2)
    stores = {"postgres": store}
    if args.candidate:
        module, _, name = args.candidate.partition(":")
        kind = getattr(importlib.import_module(module), name)
        stores["candidate"] = kind(args.dsn, table=f"{table}_c", max_connections=max(levels) + 2)
    bench = Bench(url, args.dsn, args.events, declared, store, effects, stores.get("candidate"))
    results: dict[tuple[str, int], list[Run]] = {}
    try:
        create_effects(args.dsn, effects)
        for label, each in stores.items():
            each.check()
            probes(label, args.dsn, each, 2000)
        steps(args.dsn, table, 2000)
        for label, each in stores.items():
            # Warm up the broker, the pool and the table; these events are the skip runs' replays.
            bench.handled[label] = [envelope.new_id() for _ in range(args.events)]
            bench.publish(IDEMPOTENT, bench.handled[label])
            warm = consume(bench, IDEMPOTENT, noop, each, max(levels), args.events)
            print(f"warm-up: {label} x{max(levels)} {warm.rate:,.0f}/s (not counted)")
        for n in range(args.rounds):
            for i, concurrency in enumerate(levels):
                for kind in rotated(kinds, n + i):
                    run = bench.run(kind, concurrency)
                    results.setdefault((kind, concurrency), []).append(run)
                    print(
                        f"  round {n + 1} x{concurrency} {kind}: {run.rate:,.0f}/s, "
                        f"{run.cpu_us:.0f} µs CPU/event, load {run.load:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        with suppress(Exception):
            delete_hub(url, declared)
        for each in stores.values():
            each.close()
        drop(args.dsn, table, f"{table}_c", effects)
    print(f"load average after: {_load()}\n")
    print("\n".join(table_of(results, levels, kinds)))


def table_of(
    results: dict[tuple[str, int], list[Run]], levels: Sequence[int], kinds: Sequence[str]
) -> list[str]:
    lines = [
        "| handler threads | what | events/s | vs no inbox | client CPU µs/event | load (1 min) |",
        "| ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for concurrency in levels:
        base = _median(results.get(("none", concurrency), []), "rate")
        for kind in kinds:
            runs = results[(kind, concurrency)]
            rate = _median(runs, "rate")
            ratio = f"{rate / base:.2f}" if base else ""
            loads = sorted(r.load for r in runs)
            lines.append(
                f"| {concurrency} | {MEANING[kind]} | {rate:,.0f} | {ratio} | "
                f"{_median(runs, 'cpu_us'):.0f} | {loads[0]:.1f}-{loads[-1]:.1f} |"
            )
    return lines


def _median(runs: Sequence[Run], name: str) -> float:
    values: list[Any] = [getattr(r, name) for r in runs]
    return statistics.median(values) if values else 0.0


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
