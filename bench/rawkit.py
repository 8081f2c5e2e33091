"""Where the raw pika baselines send and read: the suite's hub, or a queue of their own.

Run by the suite, a baseline publishes to the hub's exchange with the
benchmark topic (so the broker routes exactly as for hubbub) and consumes
from the subscriber's quorum queue. Run on its own, it declares a temporary
quorum queue, uses the default exchange, and deletes the queue at the end.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import pika
import pika.exceptions as pe

from bench import perfkit


@dataclass(frozen=True)
class Target:
    url: str
    exchange: str
    routing_key: str
    queue: str


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="broker URL (default HUBBUB_URL or local)")
    parser.add_argument("--events", type=int, default=20000, help="messages in this run")
    parser.add_argument(
        "--hub", default=None, help="publish to / consume from this hub (default: a temp queue)"
    )


@contextmanager
def target(args: argparse.Namespace) -> Iterator[Target]:
    """The exchange, key and queue to use; a temporary quorum queue without ``--hub``."""
    url = perfkit.url_of(args.url)
    if args.hub:
        queue = f"{args.hub}.{perfkit.SUBSCRIBER}"
        yield Target(url, args.hub, perfkit.TOPIC, queue)
        return
    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        yield Target(url, "", queue, queue)
    finally:
        with suppress(pe.AMQPError):
            connection.channel().queue_delete(queue)
            connection.close()


#: Properties of every raw message: what a careful plain-pika app sets.
PROPERTIES = pika.BasicProperties(content_type="application/json", delivery_mode=2)


def rich_properties() -> pika.BasicProperties:
    """The properties hubbub sends, built by hand for one message (``--properties hubbub``).

    Separates what hubbub's message costs (a unique id, timestamp, type, app
    id and correlation id to encode, and for the broker to parse and store)
    from what its code costs.
    """
    message_id = uuid.uuid4().hex
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id=message_id,
        timestamp=int(time.time()),
        type=perfkit.TOPIC,
        app_id="bench@raw",
        correlation_id=message_id,
    )


def fill(target: Target, events: int) -> None:
    """Queue ``events`` messages (pipelined confirms) for a consumer to read."""
    from bench.baseline_pika_select_publish import SelectPublisher

    SelectPublisher(target, events, window=1000).run()
