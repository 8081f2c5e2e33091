"""The archive's cost and speed: publish with it on and off, replay a large one, disk per event.

Prints figures; it is not a test. Against the broker in ``--url`` (default
``HUBBUB_URL`` or the local one) it:

1. publishes ``--rounds`` rounds of ``--batch`` events to two hubs alike but
   for ``archive:`` (one subscriber queue each, both bound to every event),
   alternating, and reports each one's rate and the ratio (the archive adds
   a stream write per event);
2. fills a third hub's archive with ``--events`` events (its subscriber
   matches none of them, so they are only in the archive), reports the
   broker's disk per archived event (``du`` of the stream's directory, when
   the broker's data is on this machine), then times ``replay`` of all of
   them to that subscriber (copies confirmed, progress kept) and a read of
   the whole archive (``dry run``).

Everything the run declares is deleted at the end.

    .venv/bin/python -m bench.archive                        # 1,000,000 events
    .venv/bin/python -m bench.archive --events 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pika

from bench import perfkit
from hubbub import envelope
from hubbub.admin.archive import Archive, Window
from hubbub.connection import resolve_urls
from hubbub.message import Outbound
from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader
from hubbub.topology.model import Topology

#: Where a Debian RabbitMQ keeps its streams (one directory per stream).
STREAM_DIRS = "/var/lib/rabbitmq/mnesia/*/stream/*"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    url = resolve_urls(args.url)[0]
    print(f"load average before: {_load()}, {os.cpu_count()} CPUs")
    publish_cost(url, args.batch, args.rounds)
    replay_speed(url, args.events)
    print(f"load average after: {_load()}")


def hub(name: str, *, archive: bool, topics: str = "#") -> Topology:
    spec = {"hub": name, "subscribers": {"work": {"handler": "x:y", "topics": [topics]}}}
    if archive:
        spec["archive"] = {"retention": "1d"}
    return loader.from_mapping(spec)


def publish(url: str, topology: Topology, count: int) -> float:
    """Publish ``count`` small events pipelined (5,000 in flight); seconds taken."""
    names = topology.names
    body = envelope.dumps({"user_id": 42, "email": "user42@example.com", "plan": "pro"})
    started = time.perf_counter()
    with Publisher(topology.hub, url=url, window=5000) as publisher:
        perfkit.send_confirmed(
            publisher,
            (
                Outbound(
                    names.exchange,
                    "user.signed_up",
                    envelope.message("user.signed_up", body, message_id=envelope.new_id()),
                )
                for _ in range(count)
            ),
        )
    return time.perf_counter() - started


def publish_cost(url: str, batch: int, rounds: int) -> None:
    off = hub(unique_name("bench-archive-off"), archive=False)
    on = hub(unique_name("bench-archive-on"), archive=True)
    for topology in (off, on):
        apply(topology, [url])
    took = {"off": 0.0, "on": 0.0}
    try:
        for n in range(rounds):
            for label, topology in (
                (("off", off), ("on", on))
                if n % 2 == 0
                else (
                    ("on", on),
                    ("off", off),
                )
            ):
                took[label] += publish(url, topology, batch)
                _purge(url, topology)
    finally:
        delete_hub(url, off)
        delete_hub(url, on)
    total = batch * rounds
    rate = {k: total / v for k, v in took.items()}
    print(
        f"publish, {rounds} alternating rounds of {batch:,} confirmed events per hub: "
        f"archive off {rate['off']:,.0f}/s, on {rate['on']:,.0f}/s "
        f"(on/off = {rate['on'] / rate['off']:.2f})"
    )


def replay_speed(url: str, count: int) -> None:
    topology = hub(unique_name("bench-archive-replay"), archive=True, topics="nothing.matches")
    apply(topology, [url])
    try:
        took = publish(url, topology, count)
        print(f"archived {count:,} events in {took:.1f} s ({count / took:,.0f}/s)")
        _disk(topology, count)
        archive = Archive(topology, url=url)
        window = Window(since=datetime.now(timezone.utc) - timedelta(hours=1))
        started = time.perf_counter()
        read = archive.replay("work", window, dry_run=True)
        seconds = time.perf_counter() - started
        print(f"read the whole archive (dry run): {read.matched:,} events in {seconds:.1f} s "
              f"({read.matched / seconds:,.0f}/s)")  # fmt: skip
        started = time.perf_counter()
        report = archive.replay("work", window)
        seconds = time.perf_counter() - started
        print(
            f"replayed {report.copied:,} events to one subscriber in {seconds:.1f} s "
            f"({report.copied / seconds:,.0f}/s, each confirmed)"
        )
    finally:
        delete_hub(url, topology)


def _disk(topology: Topology, count: int) -> None:
    stream = topology.names.archive
    found = [d for d in glob.glob(STREAM_DIRS) if stream.replace(".", "_") in d or stream in d]
    if not found:
        print("disk per archived event: unknown (the broker's data is not on this machine)")
        return
    size = int(subprocess.run(["du", "-sb", found[0]], capture_output=True, text=True,
                              check=True).stdout.split()[0])  # fmt: skip
    print(f"disk: {size / 1e6:,.1f} MB for {count:,} events = {size / count:.0f} bytes per event")


def _purge(url: str, topology: Topology) -> None:
    """Empty the subscriber's queue between rounds, so both hubs publish into the same state."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_purge(topology.names.queue("work"))
    finally:
        connection.close()


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
