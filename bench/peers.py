"""The asyncio section: hubbub's async API beside FastStream, the asyncio team's peer.

Same broker, hub, quorum queue, 200-byte persistent confirmed messages and
prefetch as the rest of the suite; every client in a process of its own,
contenders alternating round by round (:func:`bench.scenarios.rounds`).

1. a filled queue, trivial handler: a FastStream subscriber (``async def``,
   acked after it returned) vs hubbub's worker with an ``async def`` handler
   vs the same worker with a plain one;
2. a handler awaiting ``sleep_ms`` of simulated I/O: hubbub async with
   ``async_concurrency`` handlers in flight vs FastStream, whose RabbitMQ
   subscriber runs one task per delivery (so its prefetch is its
   concurrency): at the suite's prefetch, and at a prefetch equal to
   hubbub's concurrency; hubbub's handler threads, for context;
3. ``async_tasks`` publishes awaited at once: FastStream ``broker.publish``
   vs hubbub ``apublish``, and hubbub's ``publish_many``.

FastStream is an optional extra (``pip install -e '.[bench]'``); without it
the section says so and measures hubbub alone.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial

from bench.runner import Context, command, run
from bench.scenarios import Result, Sizes, fill, io_events, rounds

Results = dict[str, list[Result]]


def faststream_installed() -> bool:
    """Whether the suite's Python (the one its processes run on) has FastStream."""
    return importlib.util.find_spec("faststream") is not None


def consuming(ctx: Context, sizes: Sizes, *, faststream: bool) -> Results:
    """Trivial handler on a filled queue: FastStream, hubbub async, hubbub sync."""
    common = [*ctx.common(sizes.events), "--prefetch", str(sizes.prefetch)]
    runs: dict[str, list[str]] = {}
    if faststream:
        runs["faststream"] = command("faststream_consume", *common)
    concurrency = ["--concurrency", str(sizes.async_concurrency)]
    runs["async"] = command("hubbub_consume", *common, "--async", *concurrency)
    runs["sync"] = command("hubbub_consume", *common)
    return _rounds(ctx, sizes, sizes.events, runs)


def awaiting_io(ctx: Context, sizes: Sizes, *, faststream: bool) -> Results:
    """A handler awaiting ``sleep_ms``: hubbub async (``async_concurrency`` in flight) vs
    FastStream at the suite's prefetch and at a prefetch of ``async_concurrency``."""
    in_flight = sizes.async_concurrency
    events = io_events(sizes, in_flight)
    sleep = ["--handler", "sleep", "--sleep-ms", str(sizes.sleep_ms)]
    common = [*ctx.common(events), *sleep]
    prefetch = ["--prefetch", str(sizes.prefetch)]
    runs: dict[str, list[str]] = {}
    if faststream:
        runs["faststream"] = command("faststream_consume", *common, *prefetch)
        if in_flight != sizes.prefetch:
            narrow = ["--prefetch", str(in_flight)]
            runs["faststream_narrow"] = command("faststream_consume", *common, *narrow)
    concurrency = ["--concurrency", str(in_flight)]
    runs["async"] = command("hubbub_consume", *common, *prefetch, "--async", *concurrency)
    runs["threads"] = command("hubbub_consume", *common, *prefetch, *concurrency)
    return _rounds(ctx, sizes, events, runs)


def publishing(ctx: Context, sizes: Sizes, *, faststream: bool) -> Results:
    """``async_tasks`` confirmed publishes at once: FastStream, hubbub apublish, publish_many."""
    common = ctx.common(sizes.events)
    tasks = ["--tasks", str(sizes.async_tasks)]
    runs: dict[str, Callable[[], Result]] = {}
    if faststream:
        runs["faststream"] = partial(run, command("faststream_publish", *common, *tasks))
    runs["apublish"] = partial(run, command("hubbub_publish", *common, "--mode", "tasks", *tasks))
    runs["many"] = partial(run, command("hubbub_publish", *common, "--mode", "many"))
    results = rounds(ctx, sizes.rounds, *runs.values())
    return dict(zip(runs, results, strict=True))


def _rounds(ctx: Context, sizes: Sizes, events: int, runs: dict[str, list[str]]) -> Results:
    """Consumers on a queue filled with ``events`` before each run."""

    def filled(argv: list[str]) -> Result:
        fill(ctx, events)
        return run(argv)

    results = rounds(ctx, sizes.rounds, *(partial(filled, argv) for argv in runs.values()))
    return dict(zip(runs, results, strict=True))
