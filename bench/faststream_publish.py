"""FastStream publishing, timed: the asyncio peer of ``bench.hubbub_publish --mode tasks``.

``--tasks`` publishes at a time (``asyncio.gather`` of that many
``broker.publish`` calls, then the next lot) until ``--events`` were sent.
Each call awaits its broker confirm: FastStream's channels are opened with
publisher confirms by default (``Channel(publisher_confirms=True)``).
Messages are persistent (``persist=True``), the suite's 200-byte JSON
(FastStream serializes the dict with orjson), sent to the hub's exchange
with the benchmark topic. Prints msg/s.

    .venv/bin/python -m bench.faststream_publish --hub <hub> --events 20000 --tasks 1000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange

from bench import perfkit


async def publish(args: argparse.Namespace, hub: str) -> dict[str, Any]:
    broker = RabbitBroker(perfkit.url_of(args.url), logger=None, log_level=logging.CRITICAL)
    exchange = RabbitExchange(hub, type=ExchangeType.TOPIC, declare=False)
    data = perfkit.payload()
    await broker.start()
    try:
        # Warm-up (channel, confirm mode, exchange check) on a topic no subscriber gets.
        warmup = [
            broker.publish(data, exchange=exchange, routing_key="warmup.perf") for _ in range(20)
        ]
        await asyncio.gather(*warmup)
        cpu = perfkit.cpu()
        first = time.time()
        started = time.perf_counter()
        for start in range(0, args.events, args.tasks):
            count = min(args.tasks, args.events - start)
            await asyncio.gather(
                *(
                    broker.publish(data, exchange=exchange, routing_key=perfkit.TOPIC, persist=True)
                    for _ in range(count)
                )
            )
        seconds = time.perf_counter() - started
        last = time.time()
    finally:
        await broker.stop()
    return {
        "what": f"faststream publish from {args.tasks} tasks",
        "events": args.events,
        "seconds": seconds,
        "rate": args.events / seconds,
        "first": first,
        "last": last,
        "tasks": args.tasks,
        "cpu_since": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    perfkit.target_arguments(parser)
    parser.add_argument("--tasks", type=int, default=1000, help="publishes awaited at a time")
    args = parser.parse_args()
    with perfkit.hub_of(args) as hub:
        result = asyncio.run(publish(args, hub))
    cpu = result.pop("cpu_since")
    perfkit.emit(result, cpu_since=cpu)


if __name__ == "__main__":
    main()
