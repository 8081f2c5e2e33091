"""Raw pika baseline: SelectConnection publisher, confirms pipelined (window 1,000).

The fastest plain-pika way to publish with confirms: keep up to ``--window``
messages unconfirmed, publish more as the broker's (multiple) acks come in.
Persistent 200-byte JSON messages. Prints msg/s.

    .venv/bin/python -m bench.baseline_pika_select_publish --events 20000
"""

from __future__ import annotations

import argparse
import time

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.frame import Method

from bench import perfkit, rawkit


class SelectPublisher:
    """Publish ``events`` messages with at most ``window`` unconfirmed."""

    def __init__(
        self, target: rawkit.Target, events: int, window: int, *, rich: bool = False
    ) -> None:
        self.target = target
        self.rich = rich
        self.events = events
        self.window = window
        self.sent = 0
        self.confirmed = 0
        self.started = self.finished = 0.0
        self.cpu = 0.0
        self.nacked = 0
        self._channel: Channel | None = None
        self._connection = SelectConnection(
            pika.URLParameters(target.url), on_open_callback=self._on_open
        )

    def run(self) -> None:
        self._connection.ioloop.start()

    def _on_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Channel) -> None:
        self._channel = channel
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: self._start())

    def _start(self) -> None:
        self.started = time.time()
        self.cpu = perfkit.cpu()
        self._fill()

    def _fill(self) -> None:
        assert self._channel is not None
        body = perfkit.body()
        while self.sent < self.events and self.sent - self.confirmed < self.window:
            props = rawkit.rich_properties() if self.rich else rawkit.PROPERTIES
            self._channel.basic_publish(self.target.exchange, self.target.routing_key, body, props)
            self.sent += 1

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        if method.NAME == "Basic.Nack":
            self.nacked += 1
        # Confirms of one channel come in tag order: a multiple ack covers up to its tag.
        self.confirmed = method.delivery_tag if method.multiple else self.confirmed + 1
        if self.confirmed >= self.events:
            self.finished = time.time()
            self._connection.close()
            self._connection.ioloop.stop()
        else:
            self._fill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rawkit.arguments(parser)
    parser.add_argument("--window", type=int, default=1000, help="unconfirmed messages at most")
    parser.add_argument(
        "--properties",
        choices=["minimal", "hubbub"],
        default="minimal",
        help="content type and persistence only, or every property hubbub sends",
    )
    args = parser.parse_args()
    with rawkit.target(args) as target:
        rich = args.properties == "hubbub"
        publisher = SelectPublisher(target, args.events, args.window, rich=rich)
        publisher.run()
    seconds = publisher.finished - publisher.started
    perfkit.emit(
        {
            "what": f"pika select publish ({args.properties} properties)",
            "events": args.events,
            "seconds": seconds,
            "rate": args.events / seconds,
            "first": publisher.started,
            "last": publisher.finished,
            "nacked": publisher.nacked,
        },
        cpu_since=publisher.cpu,
    )


if __name__ == "__main__":
    main()
