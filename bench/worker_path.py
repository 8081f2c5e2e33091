"""The worker's own per-delivery path, in process, no broker: plain vs ``async def`` handlers.

Feeds ``--events`` deliveries of one 200-byte JSON message to a
:class:`~hubbub.consumers.worker.Worker` the way the transport's thread
does (``_on_delivered``), with a transport that only counts settlements,
and prints the process's CPU time per event: what hubbub's code costs
between a delivery arriving and its ack being handed over, without pika.
A trivial plain handler runs on one handler thread, a trivial async one on
``--concurrency`` worker tasks.

    .venv/bin/python -m bench.worker_path --kind async --events 100000
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from hubbub.consumers.worker import Worker
from hubbub.envelope import Event
from hubbub.message import Delivery, Message
from hubbub.topology import loader
from hubbub.transport.base import Subscription


class CountingTransport:
    """Settles by counting; ``done`` once ``events`` were settled."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.settled = 0
        self.done = threading.Event()

    def settle(self, subscription: Subscription, epoch: int, tag: int, ack: bool) -> None:
        self.settled += 1
        if self.settled == self.events:
            self.done.set()

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Nothing runs on a transport thread here."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Nothing runs on a transport thread here."""

    def outstanding(self) -> int:
        return 0


async def async_handler(event: Event) -> None:
    return None


def plain_handler(event: Event) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["sync", "async"], default="async")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=200, help="async worker tasks")
    args = parser.parse_args()
    topology = loader.loads("hub: bench\nsubscribers:\n  s: {handler: 'x:y', topics: [t]}\n")
    transport = CountingTransport(args.events)
    handler: Any = async_handler if args.kind == "async" else plain_handler
    worker = Worker(
        topology,
        {"s": handler},
        url="amqp://127.0.0.1:1/",  # never connected: copies would fail loudly
        transport=transport,  # type: ignore[arg-type]
        concurrency=args.concurrency if args.kind == "async" else 1,
    )
    flight = worker._flights[0]
    flight.epoch = 1
    body = b'{"n": 1, "pad": "' + b"x" * 180 + b'"}'
    message = Message(
        body=body,
        content_type="application/json",
        delivery_mode=2,
        message_id="e1",
        timestamp=int(time.time()),
    )
    deliveries = [Delivery(tag, "bench", "t", False, message) for tag in range(args.events)]
    cpu, wall = time.process_time(), time.perf_counter()
    for delivery in deliveries:
        worker._on_delivered(flight.subscription, 1, delivery)
    transport.done.wait(120)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{args.kind}: {transport.settled:,} events in {wall:.2f} s, "
        f"{cpu / args.events * 1e6:.2f} µs CPU per event"
    )
    os._exit(0)  # the worker never ran: its handler threads and loop are not stopped


if __name__ == "__main__":
    main()
