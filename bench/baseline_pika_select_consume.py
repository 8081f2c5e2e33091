"""Raw pika baseline: SelectConnection consumer, prefetch 500, multiple acks.

Consumes ``--events`` messages (already queued, or arriving while it runs)
with a trivial inline "handler" and acks with one ``multiple`` ack per
``--ack-every`` deliveries (the last ones at the end). Every delivery is
finished when it is acked, so the multiple ack never covers unfinished work.
Prints msg/s from the first delivery to the last ack.

    .venv/bin/python -m bench.baseline_pika_select_consume --events 20000
"""

from __future__ import annotations

import argparse
import time

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

from bench import perfkit, rawkit


class SelectConsumer:
    def __init__(self, target: rawkit.Target, events: int, prefetch: int, ack_every: int) -> None:
        self.target = target
        self.events = events
        self.prefetch = prefetch
        self.ack_every = ack_every
        self.received = 0
        self.first = self.last = 0.0
        self.cpu = 0.0
        self._connection = SelectConnection(
            pika.URLParameters(target.url), on_open_callback=self._on_open
        )

    def run(self) -> None:
        self._connection.ioloop.start()

    def _on_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Channel) -> None:
        channel.basic_qos(prefetch_count=self.prefetch, callback=lambda _f: self._consume(channel))

    def _consume(self, channel: Channel) -> None:
        channel.basic_consume(self.target.queue, self._on_message)
        perfkit.ready()

    def _on_message(
        self, channel: Channel, method: Basic.Deliver, _props: pika.BasicProperties, body: bytes
    ) -> None:
        if not self.received:
            self.first = time.time()
            self.cpu = perfkit.cpu()
        self.received += 1
        done = self.received >= self.events
        if done or self.received % self.ack_every == 0:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if done:
            self.last = time.time()
            self._connection.close()
            self._connection.ioloop.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rawkit.arguments(parser)
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument("--ack-every", type=int, default=100, help="deliveries per multiple ack")
    parser.add_argument("--fill", action="store_true", help="queue --events messages first")
    args = parser.parse_args()
    with rawkit.target(args) as target:
        if args.fill:
            rawkit.fill(target, args.events)
        consumer = SelectConsumer(target, args.events, args.prefetch, args.ack_every)
        consumer.run()
    seconds = consumer.last - consumer.first
    perfkit.emit(
        {
            "what": "pika select consume",
            "events": args.events,
            "seconds": seconds,
            "rate": args.events / seconds,
            "first": consumer.first,
            "last": consumer.last,
        },
        cpu_since=consumer.cpu,
    )


if __name__ == "__main__":
    main()
