"""hubbub publishing, timed: the counterpart of the raw pika publish baselines.

Modes (``--mode``):

- ``many``: one :meth:`Publisher.publish_many` call with ``--events`` events;
- ``threads``: ``--threads`` threads share one publisher, each calling
  :meth:`Publisher.publish` (which waits for its own confirm);
- ``tasks``: asyncio, ``--tasks`` :meth:`Publisher.apublish` calls at a time
  (one ``asyncio.gather``, then the next lot), each awaiting its confirm;
- ``sync``: one thread, one :meth:`Publisher.publish` at a time (latency);
- ``paced``: ``--rate`` events/s for ``--duration`` s, each event stamped
  with its send time so a consumer can measure publish-to-handler latency.

Every event is confirmed and persistent; the body is the suite's 200-byte
JSON. Prints msg/s (and latency for ``sync``).

    .venv/bin/python -m bench.hubbub_publish --hub <hub> --mode many --events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

from bench import perfkit
from hubbub.producers import OutgoingEvent, Publisher


def publish_many(publisher: Publisher, events: int) -> dict[str, Any]:
    data = perfkit.payload()
    publisher.publish_many(OutgoingEvent(perfkit.TOPIC, data) for _ in range(events))
    return {}


def publish_from_threads(publisher: Publisher, events: int, threads: int) -> dict[str, Any]:
    data = perfkit.payload()
    shares = [events // threads + (i < events % threads) for i in range(threads)]

    def publish(count: int) -> None:
        for _ in range(count):
            publisher.publish(perfkit.TOPIC, data)

    workers = [threading.Thread(target=publish, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"threads": threads}


def publish_from_tasks(publisher: Publisher, events: int, tasks: int) -> dict[str, Any]:
    """``tasks`` coroutines awaiting ``apublish`` at once, lot after lot, on one event loop."""
    data = perfkit.payload()

    async def publish_all() -> None:
        for start in range(0, events, tasks):
            count = min(tasks, events - start)
            await asyncio.gather(*(publisher.apublish(perfkit.TOPIC, data) for _ in range(count)))

    asyncio.run(publish_all())
    return {"tasks": tasks}


def publish_one_by_one(publisher: Publisher, events: int) -> dict[str, Any]:
    data = perfkit.payload()
    latencies = []
    for _ in range(events):
        before = time.perf_counter()
        publisher.publish(perfkit.TOPIC, data)
        latencies.append(time.perf_counter() - before)
    return {
        "p50_ms": perfkit.percentile(latencies, 50) * 1000,
        "p99_ms": perfkit.percentile(latencies, 99) * 1000,
    }


def publish_paced(publisher: Publisher, rate: float, duration: float) -> dict[str, Any]:
    """Publish at ``rate``: every tick, the events now due, in one publish_many.

    Each event is stamped just before it is handed over; a late tick sends
    the events it owes in one batch (the rate holds on average).
    """
    total = int(rate * duration)
    started = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        if due > sent:
            stamp = time.time()
            data = perfkit.payload(stamp)
            publisher.publish_many(OutgoingEvent(perfkit.TOPIC, data) for _ in range(due - sent))
            sent = due
        else:
            time.sleep(min(0.002, (sent + 1) / rate - (time.perf_counter() - started)))
    return {"target_rate": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    perfkit.target_arguments(parser)
    parser.add_argument(
        "--mode", choices=["many", "threads", "tasks", "sync", "paced"], default="many"
    )
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=1000, help="apublish calls at a time")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s (paced)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (paced)")
    args = parser.parse_args()
    with (
        perfkit.hub_of(args) as hub,
        Publisher(hub, url=args.url, name="hubbub bench publisher") as publisher,
    ):
        # Warm-up (connection, confirm mode) on a topic no subscriber gets: it is parked.
        publisher.publish_many(OutgoingEvent("warmup.perf", perfkit.payload()) for _ in range(20))
        events = int(args.rate * args.duration) if args.mode == "paced" else args.events
        cpu = perfkit.cpu()
        first = time.time()
        started = time.perf_counter()
        if args.mode == "many":
            extra = publish_many(publisher, events)
        elif args.mode == "threads":
            extra = publish_from_threads(publisher, events, args.threads)
        elif args.mode == "tasks":
            extra = publish_from_tasks(publisher, events, args.tasks)
        elif args.mode == "sync":
            extra = publish_one_by_one(publisher, events)
        else:
            extra = publish_paced(publisher, args.rate, args.duration)
        seconds = time.perf_counter() - started
        last = time.time()
    perfkit.emit(
        {
            "what": f"hubbub {args.mode}",
            "events": events,
            "seconds": seconds,
            "rate": events / seconds,
            "first": first,
            "last": last,
            **extra,
        },
        cpu_since=cpu,
    )


if __name__ == "__main__":
    main()
