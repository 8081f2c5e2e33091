"""FastStream consuming, timed: the asyncio peer of ``bench.hubbub_consume``.

One ``@broker.subscriber`` on the suite's quorum queue (declared by the
suite: FastStream only checks it exists), an ``async def`` handler that does
nothing (``--handler noop``) or awaits ``asyncio.sleep`` (``sleep``), and
FastStream's default ack policy: the message is acked after the handler
returned. The prefetch is the subscriber channel's ``prefetch_count``.

How many handlers run at once: FastStream 0.7's RabbitMQ subscriber has no
``max_workers`` (its Kafka, NATS and Redis subscribers do); aio-pika runs
every delivery in a task of its own, so the handlers in flight are bounded
by the prefetch alone (``--prefetch 200``: 200 at a time).

FastStream logs two lines per message by default; the run turns its logger
off (``--logging`` keeps it), as a team measuring throughput would.

Prints msg/s from the first delivery to the last ack, as hubbub_consume does.

    .venv/bin/python -m bench.faststream_consume --hub <hub> --events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

from bench import perfkit


class Clock:
    """First delivery, last ack, how many acked; ``done`` once ``events`` were."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.settled = 0
        self.first = self.last = 0.0
        self.cpu = 0.0
        self.done = asyncio.Event()

    def start(self) -> None:
        if not self.first:
            self.first = time.time()
            self.cpu = perfkit.cpu()

    def settle(self) -> None:
        self.settled += 1
        self.last = time.time()
        if self.settled == self.events:
            self.done.set()


def broker_for(args: argparse.Namespace) -> RabbitBroker:
    if args.logging:
        return RabbitBroker(perfkit.url_of(args.url))
    return RabbitBroker(perfkit.url_of(args.url), logger=None, log_level=logging.CRITICAL)


async def consume(args: argparse.Namespace, hub: str) -> dict[str, Any]:
    clock = Clock(args.events)
    broker = broker_for(args)
    pause = args.sleep_ms / 1000
    queue = RabbitQueue(f"{hub}.{perfkit.SUBSCRIBER}", declare=False)
    channel = Channel(prefetch_count=args.prefetch)

    async def noop(body: Any) -> None:
        pass

    async def sleep(body: Any) -> None:
        await asyncio.sleep(pause)

    subscriber = broker.subscriber(queue, channel=channel)
    subscriber(sleep if args.handler == "sleep" else noop)
    _time_acks(subscriber, clock)
    await broker.start()
    perfkit.ready()
    await clock.done.wait()
    await broker.stop()
    return {
        "what": f"faststream consume {args.handler} prefetch {args.prefetch}",
        "events": clock.settled,
        "seconds": clock.last - clock.first,
        "rate": clock.settled / (clock.last - clock.first),
        "first": clock.first,
        "last": clock.last,
        "cpu_since": clock.cpu,
    }


def _time_acks(subscriber: Any, clock: Clock) -> None:
    """Count a delivery when FastStream is done with it: its ack has been sent.

    The ack is sent by FastStream's outermost middleware on the way out of
    ``consume`` (the callback aio-pika runs per delivery), after every user
    middleware; so the clock wraps ``consume`` itself.
    """
    inner = subscriber.consume

    async def timed(message: Any) -> Any:
        clock.start()
        try:
            return await inner(message)
        finally:
            clock.settle()

    subscriber.consume = timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    perfkit.target_arguments(parser)
    parser.add_argument("--handler", choices=["noop", "sleep"], default="noop")
    parser.add_argument("--sleep-ms", type=float, default=10.0)
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument("--logging", action="store_true", help="FastStream's per-message logs")
    parser.add_argument("--fill", action="store_true", help="publish --events events first")
    args = parser.parse_args()
    with perfkit.hub_of(args) as hub:
        if args.fill:
            perfkit.fill(args.url, hub, args.events)
        result = asyncio.run(consume(args, hub))
    cpu = result.pop("cpu_since")
    perfkit.emit(result, cpu_since=cpu)


if __name__ == "__main__":
    main()
