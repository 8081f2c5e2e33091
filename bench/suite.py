"""The performance suite (``make bench``): hubbub next to raw pika, in one run.

Declares a hub with one subscriber (so every message lands in one quorum
queue), then measures, each figure the median of ``--rounds`` runs with the
raw pika baseline and hubbub alternating:

1. publishing: ``publish_many``, N threads calling ``publish`` and 1,000
   asyncio tasks awaiting ``apublish`` vs a raw SelectConnection publisher
   (window 1,000, and window N), and ``apublish`` vs ``publish_many``;
2. one synchronous ``publish`` vs raw BlockingConnection confirm-each (latency);
3. consuming a filled queue with a trivial handler vs a raw SelectConnection
   consumer with multiple acks, same prefetch;
4. publishing and consuming together (PerfTest style), hubbub vs raw pika;
5. a handler sleeping 10 ms: msg/s against handler threads (1 to 512), and
   against consumer processes (1 to 8, 32 threads each), up to the CPU's limit;
6. publish -> handler-start latency at 10%, 50% and 90% of the together rate;
7. asyncio (bench/peers.py): hubbub's async handlers and ``apublish`` beside
   FastStream (an optional extra: skipped, with a line saying so, without it)
   and beside hubbub's own sync handler and ``publish_many``;
8. the inbox (bench/inbox.py, a few thousand events): consuming with no
   inbox, a MemoryStore, a PostgresStore (also with a handler write, and
   replayed events skipped), at 1 and 8 handler threads; it needs
   PostgreSQL (``HUBBUB_TEST_POSTGRES`` or the machine's) and psycopg, and
   is skipped, with a line saying why, without them.

Prints Markdown tables (the ones in bench/README.md). Everything declared is
deleted at the end.

    make bench                      # full size, about 5 minutes (+4 for --only asyncio)
    .venv/bin/python -m bench --quick
    .venv/bin/python -m bench --only publish,sync --events 50000
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import replace
from functools import partial

import pika

from bench import peers, perfkit, report, scenarios
from bench.runner import PROCESS_TIMEOUT, Context, command
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply

SECTIONS = (
    "publish",
    "sync",
    "consume",
    "together",
    "io",
    "processes",
    "latency",
    "asyncio",
    "inbox",
)
#: Events per run of the inbox section (its PostgreSQL runs take about 1-2 ms per event).
INBOX_EVENTS = 3000
QUICK = scenarios.Sizes(
    events=5000,
    sync_events=300,
    rounds=1,
    threads=(32,),
    concurrency=(1, 4, 16, 64),
    processes=(1, 2),
    io_seconds=1.0,
    latency_seconds=2.0,
)


def main() -> None:
    args = _arguments()
    sizes = _sizes(args)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    url = perfkit.url_of(args.url)
    ctx = Context(url, unique_name("bench-perf"))
    topology = perfkit.topology(ctx.hub)
    apply(topology, [url])
    _print_header(url, sizes, args)
    try:
        _run(ctx, sizes, only)
    finally:
        with suppress(Exception):
            delete_hub(url, topology)
    print(f"\nfinished {_now()}, load average {_load()}")


def _run(ctx: Context, sizes: scenarios.Sizes, only: set[str]) -> None:
    publish = _step("publish", only, scenarios.publishing, ctx, sizes)
    sync = _step("sync", only, scenarios.sync_latency, ctx, sizes)
    consume = _step("consume", only, scenarios.consuming, ctx, sizes)
    both = _step("together", only, scenarios.together, ctx, sizes)
    if publish or consume or both:
        _table("Throughput", report.throughput_table(publish, consume, both, sizes.events))
        _print(report.together_note(both))
    if sync:
        _table("Synchronous publish", report.latency_table(sync))
    if "io" in only:
        results = scenarios.io_concurrency(ctx, sizes)
        title = f"I/O-bound handler ({sizes.sleep_ms:g} ms sleep), one process: handler threads"
        _table(title, report.io_table("threads", results, 1, sizes.sleep_ms))
    if "processes" in only:
        results = scenarios.io_processes(ctx, sizes)
        each = sizes.process_concurrency
        title = f"The same handler: consumer processes, {each} handler threads each"
        _table(title, report.io_table("processes", results, each, sizes.sleep_ms))
    if "latency" in only:
        top = report.rate(both["hubbub"]) if both else _measure_top(ctx, sizes)
        _table(
            "End-to-end latency, publish -> handler start (paced publish_many, one consumer)",
            report.e2e_table(scenarios.latency(ctx, sizes, top), top),
        )
    if "asyncio" in only:
        _asyncio(ctx, sizes)
    if "inbox" in only:
        _timed("inbox", _inbox, ctx, sizes)


def _inbox(ctx: Context, sizes: scenarios.Sizes) -> None:
    """bench/inbox.py in a process of its own, small; its table, or why it did not run."""
    events = min(INBOX_EVENTS, sizes.events)
    argv = command(
        "inbox", "--url", ctx.url, "--events", str(events), "--rounds", str(sizes.rounds)
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    title = f"The inbox: {events:,} events per run, median of {sizes.rounds}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        _table(title, [f"skipped: bench.inbox failed (exit {done.returncode}): {why}"])
        return
    lines = done.stdout.splitlines()
    _table(title, [line for line in lines if line.startswith("|")])
    _print(["", *[line for line in lines if line.startswith(("PostgreSQL", "a claim"))]])


def _asyncio(ctx: Context, sizes: scenarios.Sizes) -> None:
    """hubbub async beside FastStream (when installed) and beside hubbub sync."""
    installed = peers.faststream_installed()
    consume = _timed("asyncio consume", partial(peers.consuming, faststream=installed), ctx, sizes)
    io = _timed("asyncio io", partial(peers.awaiting_io, faststream=installed), ctx, sizes)
    publish = _timed("asyncio publish", partial(peers.publishing, faststream=installed), ctx, sizes)
    title = "asyncio: hubbub's async handlers and `apublish` beside FastStream and hubbub sync"
    _table(title, report.asyncio_table(consume, io, publish, sizes))
    _print(report.faststream_note(installed, _faststream_version() if installed else None))
    _table(
        f"asyncio: a handler awaiting {sizes.sleep_ms:g} ms, against the ideal",
        report.awaiting_io_table(io, sizes),
    )


def _step(name: str, only: set[str], measure, ctx, sizes):  # type: ignore[no-untyped-def]
    if name not in only:
        return None
    return _timed(name, measure, ctx, sizes)


def _timed(name: str, measure, ctx, sizes):  # type: ignore[no-untyped-def]
    """``measure(ctx, sizes)``, its start and duration told on stderr."""
    started = time.monotonic()
    print(f"... {name}", file=sys.stderr, flush=True)
    result = measure(ctx, sizes)
    print(f"... {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return result


def _measure_top(ctx: Context, sizes: scenarios.Sizes) -> float:
    """The together rate, when the latency section runs without the together one."""
    return report.rate(scenarios.together(ctx, replace(sizes, rounds=1))["hubbub"])


def _table(title: str, lines: list[str]) -> None:
    _print(["", f"### {title}", "", *lines])


def _print(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def _print_header(url: str, sizes: scenarios.Sizes, args: argparse.Namespace) -> None:
    _print(
        [
            f"started {_now()} on {platform.node()}: {os.cpu_count()} cores, "
            f"load average {_load()}",
            f"broker RabbitMQ {_broker_version(url)}, Python {platform.python_version()}, "
            f"pika {pika.__version__}",
            f"command: python -m bench {' '.join(sys.argv[1:])}".rstrip(),
            f"{perfkit.BODY_BYTES}-byte JSON, persistent, one quorum queue, confirms on; "
            f"{sizes.events:,} messages per throughput run, prefetch {sizes.prefetch}, "
            f"median of {sizes.rounds} round(s), raw and hubbub alternating",
        ]
    )


def _faststream_version() -> str:
    from importlib.metadata import version

    return version("faststream")


def _broker_version(url: str) -> str:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        version = connection._impl.server_properties.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        connection.close()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _sizes(args: argparse.Namespace) -> scenarios.Sizes:
    sizes = QUICK if args.quick else scenarios.Sizes()
    changes = {
        name: value
        for name, value in (
            ("events", args.events),
            ("sync_events", args.sync_events),
            ("rounds", args.rounds),
            ("prefetch", args.prefetch),
            ("threads", _ints(args.threads)),
            ("tasks", args.tasks),
            ("concurrency", _ints(args.concurrency)),
            ("processes", _ints(args.processes)),
            ("process_concurrency", args.process_concurrency),
        )
        if value
    }
    return replace(sizes, **changes)


def _ints(text: str | None) -> tuple[int, ...] | None:
    return tuple(int(v) for v in text.split(",")) if text else None


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="broker URL (default HUBBUB_URL or local)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (~1 min)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--events", type=int, help="messages per throughput run (20000)")
    parser.add_argument("--sync-events", type=int, help="publishes in the latency run (1000)")
    parser.add_argument("--rounds", type=int, help="runs per figure; the median is shown (3)")
    parser.add_argument("--prefetch", type=int, help="consumer prefetch (500)")
    parser.add_argument("--threads", help="publishing threads, comma-separated (8,32,128,512)")
    parser.add_argument("--tasks", type=int, help="asyncio tasks calling apublish (1000)")
    parser.add_argument("--concurrency", help="handler threads to try (1,2,4,...,512)")
    parser.add_argument("--processes", help="consumer processes to try (1,2,4,8)")
    parser.add_argument("--process-concurrency", type=int, help="handler threads per process (32)")
    return parser.parse_args()
