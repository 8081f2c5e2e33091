"""Raw pika baseline: BlockingConnection in confirm mode, one message at a time.

Each ``basic_publish`` waits for the broker's confirm before the next one is
sent: the latency of one synchronous confirmed publish. Prints msg/s and the
per-publish latency (p50, p99). Persistent 200-byte JSON messages.

    .venv/bin/python -m bench.baseline_pika_confirm_each --events 1000
"""

from __future__ import annotations

import argparse
import time

import pika

from bench import perfkit, rawkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rawkit.arguments(parser)
    parser.set_defaults(events=1000)
    args = parser.parse_args()
    with rawkit.target(args) as target:
        connection = pika.BlockingConnection(pika.URLParameters(target.url))
        channel = connection.channel()
        channel.confirm_delivery()
        body = perfkit.body()
        for _ in range(20):  # warm-up
            channel.basic_publish(target.exchange, target.routing_key, body, rawkit.PROPERTIES)
        latencies = []
        cpu = perfkit.cpu()
        started = time.perf_counter()
        for _ in range(args.events):
            before = time.perf_counter()
            channel.basic_publish(target.exchange, target.routing_key, body, rawkit.PROPERTIES)
            latencies.append(time.perf_counter() - before)
        seconds = time.perf_counter() - started
        connection.close()
    perfkit.emit(
        {
            "what": "pika confirm each",
            "events": args.events,
            "seconds": seconds,
            "rate": args.events / seconds,
            "p50_ms": perfkit.percentile(latencies, 50) * 1000,
            "p99_ms": perfkit.percentile(latencies, 99) * 1000,
        },
        cpu_since=cpu,
    )


if __name__ == "__main__":
    main()
