"""Shared pieces of the performance suite: payload, hub, results, statistics.

Every script of the suite (the hubbub ones and the raw pika baselines) sends
the same 200-byte JSON body, persistent, through the same hub exchange into
one quorum queue, and reports its figures as one ``RESULT {json}`` line on
stdout so that :mod:`bench.suite` can run it in a process of its own and
read the outcome. Cross-process intervals use ``time.time()`` (one machine,
one clock); intervals inside a process use ``time.perf_counter()``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import orjson
import pika
import pika.exceptions as pe

from hubbub.connection import resolve_urls
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader
from hubbub.topology.model import Topology

#: Size of every message body, in bytes.
BODY_BYTES = 200
#: Routing key (event topic) of every benchmark message.
TOPIC = "bench.perf"
#: The one subscriber of the benchmark hub (its queue is the quorum queue).
SUBSCRIBER = "sink"
RESULT_PREFIX = "RESULT "


def send_confirmed(publisher: Any, outbounds: Iterable[Any], batch: int = 5000) -> None:
    """Send each of ``outbounds`` through a hubbub ``Publisher``, ``batch`` unconfirmed at
    most, and return once the broker confirmed them all (filling a queue fast)."""
    pending = []
    for outbound in outbounds:
        pending.append(publisher.send(outbound))
        if len(pending) >= batch:
            for future in pending:
                publisher.wait(future)
            pending.clear()
    for future in pending:
        publisher.wait(future)


def payload(sent: float = 0.0) -> dict[str, Any]:
    """Event data whose JSON is exactly :data:`BODY_BYTES` long.

    ``sent`` (epoch seconds) lets a consumer measure publish-to-handler latency.
    """
    data: dict[str, Any] = {"user_id": 12345, "email": "someone@example.com", "sent": sent}
    data["pad"] = ""
    data["pad"] = "x" * (BODY_BYTES - len(orjson.dumps({**data, "sent": 1.0e9 + 0.123456})))
    return data


def body(sent: float = 0.0) -> bytes:
    """:func:`payload` serialized (what the raw pika scripts send)."""
    return orjson.dumps(payload(sent))


def topology(hub: str) -> Topology:
    """A hub with one subscriber receiving every benchmark event."""
    subscriber = {"handler": "bench.perfkit:payload", "topics": ["bench.#"]}
    return loader.from_mapping({"hub": hub, "subscribers": {SUBSCRIBER: subscriber}})


def url_of(url: str | None) -> str:
    return resolve_urls(url)[0]


def purge(url: str, queue: str) -> None:
    """Empty ``queue`` so that every run starts alike."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_purge(queue)
    finally:
        with suppress(pe.AMQPError):
            connection.close()


def depth(url: str, queue: str) -> int:
    """Ready messages in ``queue``."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        frame = connection.channel().queue_declare(queue, passive=True)
        return int(frame.method.message_count)
    finally:
        with suppress(pe.AMQPError):
            connection.close()


def cpu() -> float:
    """CPU seconds (user + system) this process used so far, all threads."""
    times = os.times()
    return times.user + times.system


def emit(result: dict[str, Any], *, cpu_since: float) -> None:
    """Report ``result`` to the suite and to a reader, with the CPU used since ``cpu_since``.

    Measure from just before the timed work, so imports and connecting are
    not counted in the client's CPU per message.
    """
    result = {**result, "cpu_s": cpu() - cpu_since}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(line: str) -> dict[str, Any] | None:
    if not line.startswith(RESULT_PREFIX):
        return None
    value: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
    return value


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def now() -> float:
    return time.time()


def target_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every script takes: where to send and how much."""
    parser.add_argument("--url", default=None, help="broker URL (default HUBBUB_URL or local)")
    parser.add_argument(
        "--hub", default=None, help="hub declared by the suite (default: a temporary one)"
    )
    parser.add_argument("--events", type=int, default=20000, help="messages in this run")


def fill(url: str | None, hub: str, events: int) -> None:
    """Queue ``events`` hubbub events (as hubbub's publisher writes them) for a consumer."""
    from hubbub.producers import OutgoingEvent, Publisher

    with Publisher(hub, url=url, name="hubbub bench fill") as publisher:
        for start in range(0, events, 5000):
            data = payload()
            count = min(5000, events - start)
            publisher.publish_many(OutgoingEvent(TOPIC, data) for _ in range(count))


@contextmanager
def hub_of(args: argparse.Namespace) -> Iterator[str]:
    """``--hub``, or a hub declared for this run alone and deleted after it."""
    if args.hub:
        yield args.hub
        return
    url = url_of(args.url)
    declared = topology(unique_name("bench-solo"))
    apply(declared, [url])
    try:
        yield declared.hub
    finally:
        delete_hub(url, declared)


READY = "READY"


def ready() -> None:
    """Tell the suite this process is consuming (it starts the clock or the publisher)."""
    print(READY, flush=True)
