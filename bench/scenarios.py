"""The measurements of the performance suite, each a function returning figures.

Every function runs its hubbub client and its raw pika counterpart in the
same round, alternately (raw, then hubbub, ``rounds`` times), so a change in
the machine's load hits both; the figures are medians over the rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench import gobaseline, perfkit
from bench.runner import Background, Context, command, run


@dataclass(frozen=True)
class Sizes:
    events: int = 20000
    sync_events: int = 1000
    rounds: int = 3
    prefetch: int = 500
    threads: tuple[int, ...] = (8, 32, 128, 512)
    tasks: int = 1000
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    processes: tuple[int, ...] = (1, 2, 4, 8)
    process_concurrency: int = 32
    sleep_ms: float = 10.0
    io_seconds: float = 3.0
    latency_seconds: float = 5.0
    loads: tuple[float, ...] = (0.1, 0.5, 0.9)
    #: async handlers in flight (the asyncio section's hubbub worker)
    async_concurrency: int = 200
    #: publishes awaited at once from as many asyncio tasks (the asyncio section)
    async_tasks: int = 1000


Result = dict[str, Any]


def rounds(ctx: Context, n: int, *runs: Callable[[], Result]) -> list[list[Result]]:
    """``runs`` one after the other, ``n`` times, the queue purged before each."""
    results: list[list[Result]] = [[] for _ in runs]
    for _ in range(n):
        for index, one in enumerate(runs):
            perfkit.purge(ctx.url, ctx.queue)
            results[index].append(one())
    return results


def fill(ctx: Context, events: int) -> None:
    """Queue ``events`` hubbub events (as a hubbub publisher writes them) for a consumer."""
    perfkit.fill(ctx.url, ctx.hub, events)


# -- publishing ---------------------------------------------------------------


def publishing(ctx: Context, sizes: Sizes) -> dict[str, list[Result]]:
    """Pipelined publishing: raw Select (window 1000 and window = threads) vs hubbub.

    ``publish()`` from N threads is also measured against raw pika in the
    same shape (N threads, each waiting for its own confirm), and
    ``apublish()`` from ``tasks`` asyncio tasks against ``publish_many``.

    The raw publisher runs twice at window 1000: with a careful app's minimal
    properties, and with every property hubbub sends (what the message costs,
    apart from what hubbub's code costs).
    """
    common = ctx.common(sizes.events)
    runs: dict[str, Callable[[], Result]] = {
        "raw": lambda: run(command("baseline_pika_select_publish", *common)),
        "raw_rich": lambda: run(
            command("baseline_pika_select_publish", *common, "--properties", "hubbub")
        ),
        "many": lambda: run(command("hubbub_publish", *common, "--mode", "many")),
        "async": lambda: run(
            command("hubbub_publish", *common, "--mode", "tasks", "--tasks", str(sizes.tasks))
        ),
    }
    if gobaseline.binary() is not None:
        runs["go"] = lambda: run(gobaseline.command(*common, "--mode", "publish"))
    for t in sizes.threads:
        threads = command("hubbub_publish", *common, "--mode", "threads", "--threads", str(t))
        window = command("baseline_pika_select_publish", *common, "--window", str(t))
        raw_threads = command("baseline_pika_threads", *common, "--threads", str(t))
        runs[f"threads{t}"] = partial(run, threads)
        runs[f"raw_window{t}"] = partial(run, window)
        runs[f"raw_threads{t}"] = partial(run, raw_threads)
    results = rounds(ctx, sizes.rounds, *runs.values())
    return dict(zip(runs, results, strict=True))


def sync_latency(ctx: Context, sizes: Sizes) -> dict[str, list[Result]]:
    """One synchronous confirmed publish at a time: raw confirm-each vs hubbub publish()."""
    common = ctx.common(sizes.sync_events)
    raw, hubbub = rounds(
        ctx,
        sizes.rounds,
        lambda: run(command("baseline_pika_confirm_each", *common)),
        lambda: run(command("hubbub_publish", *common, "--mode", "sync")),
    )
    return {"raw": raw, "hubbub": hubbub}


# -- consuming ----------------------------------------------------------------


def consuming(ctx: Context, sizes: Sizes) -> dict[str, list[Result]]:
    """Pre-filled queue, trivial handler: raw Select with multiple acks vs hubbub's Worker
    (and the same Worker keeping Prometheus metrics, as ``--metrics-port`` does)."""
    common = [*ctx.common(sizes.events), "--prefetch", str(sizes.prefetch)]

    def raw() -> Result:
        fill(ctx, sizes.events)
        return run(command("baseline_pika_select_consume", *common))

    def hubbub(*extra: str) -> Result:
        fill(ctx, sizes.events)
        return run(command("hubbub_consume", *common, *extra))

    raw_results, hubbub_results, metered = rounds(
        ctx, sizes.rounds, raw, hubbub, partial(hubbub, "--metrics")
    )
    return {"raw": raw_results, "hubbub": hubbub_results, "metrics": metered}


def together(ctx: Context, sizes: Sizes) -> dict[str, list[Result]]:
    """Publish and consume at once (PerfTest style): rate = events / (first publish .. last ack)."""
    common = ctx.common(sizes.events)
    prefetch = ["--prefetch", str(sizes.prefetch)]

    def pair(consumer: list[str], publisher: list[str]) -> Result:
        background = Background(consumer)
        background.wait_ready()
        published = run(publisher)
        consumed = background.finish()
        seconds = consumed["last"] - published["first"]
        return {
            "rate": sizes.events / seconds,
            "seconds": seconds,
            "cpu_s": published["cpu_s"] + consumed["cpu_s"],
        }

    runs: dict[str, Callable[[], Result]] = {
        "raw": lambda: pair(
            command("baseline_pika_select_consume", *common, *prefetch),
            command("baseline_pika_select_publish", *common),
        ),
        "hubbub": lambda: pair(
            command("hubbub_consume", *common, *prefetch),
            command("hubbub_publish", *common, "--mode", "many"),
        ),
    }
    if gobaseline.binary() is not None:  # publisher and consumer in one process, as PerfTest
        runs["go"] = lambda: run(gobaseline.command(*common, *prefetch, "--mode", "together"))
    results = rounds(ctx, sizes.rounds, *runs.values())
    return dict(zip(runs, results, strict=True))


# -- I/O-bound handlers ------------------------------------------------------


def io_concurrency(ctx: Context, sizes: Sizes) -> dict[int, list[Result]]:
    """A handler sleeping ``sleep_ms``: msg/s against handler threads (one process)."""
    results: dict[int, list[Result]] = {}
    for threads in sizes.concurrency:
        events = io_events(sizes, threads)
        argv = command(
            "hubbub_consume",
            *ctx.common(events),
            "--handler", "sleep",
            "--sleep-ms", str(sizes.sleep_ms),
            "--concurrency", str(threads),
            "--prefetch", str(max(sizes.prefetch, 2 * threads)),
        )  # fmt: skip

        results[threads] = rounds(ctx, sizes.rounds, partial(_filled_run, ctx, events, argv))[0]
    return results


def _filled_run(ctx: Context, events: int, argv: list[str]) -> Result:
    fill(ctx, events)
    return run(argv)


def io_processes(ctx: Context, sizes: Sizes) -> dict[int, list[Result]]:
    """The same handler: msg/s against consumer processes, ``process_concurrency`` threads each."""
    results: dict[int, list[Result]] = {}
    for count in sizes.processes:
        events = io_events(sizes, count * sizes.process_concurrency)
        one = partial(_processes, ctx, sizes, count, events)
        results[count] = rounds(ctx, sizes.rounds, one)[0]
    return results


def _processes(ctx: Context, sizes: Sizes, count: int, events: int) -> Result:
    argv = command(
        "hubbub_consume",
        *ctx.common(0),
        "--handler", "sleep",
        "--sleep-ms", str(sizes.sleep_ms),
        "--concurrency", str(sizes.process_concurrency),
        "--prefetch", str(sizes.prefetch),
    )  # fmt: skip
    consumers = [Background(argv) for _ in range(count)]
    try:
        for consumer in consumers:
            consumer.wait_ready()
        fill(ctx, events)
        deadline = time.monotonic() + 600
        while sum(c.progress for c in consumers) < events and time.monotonic() < deadline:
            time.sleep(0.05)
        results = [c.finish() for c in consumers]
    finally:
        for consumer in consumers:
            consumer.kill()
    first = min(r["first"] for r in results if r["events"])
    last = max(r["last"] for r in results)
    settled = sum(r["events"] for r in results)
    per_process = [r["events"] for r in results]
    return {"rate": settled / (last - first), "events": settled, "per_process": per_process}


def io_events(sizes: Sizes, threads: int) -> int:
    """Enough events to keep ``threads`` sleeping handlers busy for ``io_seconds``."""
    return max(100, int(threads * 1000 / sizes.sleep_ms * sizes.io_seconds))


# -- latency -----------------------------------------------------------------


def latency(ctx: Context, sizes: Sizes, top_rate: float) -> dict[float, list[Result]]:
    """Publish -> handler start at fractions of ``top_rate`` (a paced publisher)."""
    results: dict[float, list[Result]] = {}
    for load in sizes.loads:
        rate = top_rate * load
        one = partial(_paced_run, ctx, sizes, rate, int(rate * sizes.latency_seconds))
        results[load] = rounds(ctx, sizes.rounds, one)[0]
    return results


def _paced_run(ctx: Context, sizes: Sizes, rate: float, events: int) -> Result:
    prefetch = ["--prefetch", str(sizes.prefetch)]
    consumer = Background(command("hubbub_consume", *ctx.common(events), "--latency", *prefetch))
    consumer.wait_ready()
    pace = ["--mode", "paced", "--rate", f"{rate:.1f}", "--duration", str(sizes.latency_seconds)]
    published = run(command("hubbub_publish", *ctx.common(events), *pace))
    consumed = consumer.finish()
    return {**consumed, "target_rate": rate, "published_rate": published["rate"]}
