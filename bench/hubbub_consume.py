"""hubbub consuming, timed: a :class:`~hubbub.consumers.worker.Worker` on the suite's hub.

The handler is trivial (``--handler noop``) or I/O-bound (``sleep``: sleeps
``--sleep-ms``); with ``--async`` it is an ``async def`` (awaiting
``asyncio.sleep``), run on the worker's event loop with ``--concurrency``
handlers in flight instead of handler threads. Each delivery is acked by
the worker after its handler returned, as in production. The run ends
after ``--events`` settled deliveries, or, with ``--events 0``, when stdin
closes (the suite runs several such processes side by side; each prints
``PROGRESS <settled>`` lines so the suite knows when they are done
together).

Prints msg/s from the first delivery to the last settled one and, with
``--latency``, the publish-to-handler-start latency of events stamped by
``bench.hubbub_publish --mode paced``.

    .venv/bin/python -m bench.hubbub_consume --hub <hub> --events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench import perfkit
from hubbub import Event
from hubbub.consumers.handling import Outcome
from hubbub.consumers.metrics import Metrics
from hubbub.consumers.observer import Observer
from hubbub.consumers.worker import Worker


class Clock(Observer):
    """Times the run: first delivery, last settled delivery, how many settled."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.settled_count = 0
        self.first = self.last = 0.0
        self.cpu = 0.0
        self.done = threading.Event()

    def started(self, subscriber: str) -> None:
        if not self.first:
            self.first = time.time()
            self.cpu = perfkit.cpu()

    def settled(self, subscriber: str) -> None:
        self.settled_count += 1
        self.last = time.time()
        if self.settled_count == self.events:
            self.done.set()


class MeteredClock(Clock):
    """The clock, plus the Prometheus metrics a production consumer keeps."""

    def __init__(self, events: int) -> None:
        super().__init__(events)
        self.metrics = Metrics()
        self.metrics.declare([perfkit.SUBSCRIBER])

    def started(self, subscriber: str) -> None:
        super().started(subscriber)
        self.metrics.started(subscriber)

    def finished(self, subscriber: str, outcome: Outcome, seconds: float) -> None:
        self.metrics.finished(subscriber, outcome, seconds)

    def settled(self, subscriber: str) -> None:
        self.metrics.settled(subscriber)
        super().settled(subscriber)


def make_handler(
    kind: str, sleep_ms: float, latencies: list[float] | None
) -> Callable[[Event], None]:
    pause = sleep_ms / 1000

    def handler(event: Event) -> None:
        if latencies is not None:
            latencies.append(time.time() - event.data["sent"])
        if kind == "sleep":
            time.sleep(pause)

    return handler


def make_async_handler(
    kind: str, sleep_ms: float, latencies: list[float] | None
) -> Callable[[Event], Awaitable[None]]:
    pause = sleep_ms / 1000

    async def handler(event: Event) -> None:
        if latencies is not None:
            latencies.append(time.time() - event.data["sent"])
        if kind == "sleep":
            await asyncio.sleep(pause)

    return handler


def report_progress(clock: Clock, stop: threading.Event) -> None:
    """Print ``PROGRESS <settled>`` whenever it changed (every 50 ms at most)."""
    shown = -1
    while not stop.wait(0.05):
        count = clock.settled_count
        if count != shown:
            print(f"PROGRESS {count}", flush=True)
            shown = count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    perfkit.target_arguments(parser)
    parser.add_argument("--handler", choices=["noop", "sleep"], default="noop")
    parser.add_argument("--sleep-ms", type=float, default=10.0)
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="handler threads (--async: tasks in flight)"
    )
    parser.add_argument("--async", dest="is_async", action="store_true", help="async def handler")
    parser.add_argument("--latency", action="store_true", help="record publish-to-handler latency")
    parser.add_argument("--fill", action="store_true", help="publish --events events first")
    parser.add_argument("--metrics", action="store_true", help="keep Prometheus metrics too")
    args = parser.parse_args()
    with perfkit.hub_of(args) as hub:
        if args.fill:
            perfkit.fill(args.url, hub, args.events)
        consume(args, hub)


def consume(args: argparse.Namespace, hub: str) -> None:
    """Run a worker until the run's end; print its RESULT."""
    latencies: list[float] | None = [] if args.latency else None
    clock = MeteredClock(args.events) if args.metrics else Clock(args.events)
    make = make_async_handler if args.is_async else make_handler
    worker = Worker(
        perfkit.topology(hub),
        {perfkit.SUBSCRIBER: make(args.handler, args.sleep_ms, latencies)},
        url=args.url,
        prefetch=args.prefetch,
        concurrency=args.concurrency,
        observer=clock,
        name="hubbub bench consumer",
    )
    threading.Thread(target=_announce, args=(worker,), daemon=True).start()
    watch = threading.Event()
    if args.events:
        threading.Thread(target=lambda: (clock.done.wait(), worker.stop()), daemon=True).start()
    else:
        threading.Thread(target=report_progress, args=(clock, watch), daemon=True).start()
        threading.Thread(target=lambda: (sys.stdin.read(), worker.stop()), daemon=True).start()
    worker.run()
    watch.set()
    perfkit.emit(_result(args, clock, latencies), cpu_since=clock.cpu)


def _announce(worker: Worker) -> None:
    worker.consuming.wait()
    perfkit.ready()


def _result(
    args: argparse.Namespace, clock: Clock, latencies: list[float] | None
) -> dict[str, Any]:
    seconds = clock.last - clock.first
    result: dict[str, Any] = {
        "what": f"hubbub consume {'async ' if args.is_async else ''}{args.handler} "
        f"x{args.concurrency}" + (" with metrics" if args.metrics else ""),
        "events": clock.settled_count,
        "seconds": seconds,
        "rate": clock.settled_count / seconds if seconds > 0 else 0.0,
        "first": clock.first,
        "last": clock.last,
    }
    if latencies:
        result["latency_p50_ms"] = perfkit.percentile(latencies, 50) * 1000
        result["latency_p99_ms"] = perfkit.percentile(latencies, 99) * 1000
    return result


if __name__ == "__main__":
    main()
