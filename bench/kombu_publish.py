"""Publishing throughput: the kombu publisher next to hubbub's own pika publisher.

Prints figures; it is not a test. Declares a hub with one subscriber (so
every event is stored in a quorum queue, as in real use; nothing consumes
it), then publishes ``--events`` small events, each confirmed, with:

- ``kombu publish``: :class:`~hubbub.producers.kombu.KombuPublisher`, one
  event at a time (kombu waits for each confirm);
- ``kombu pool, N threads``: the same over a kombu pool from N threads;
- ``kombu raw Producer``: kombu's own ``Producer.publish`` with confirms,
  the floor under the kombu publisher (no hubbub envelope);
- ``pika publish``: :meth:`hubbub.producers.Publisher.publish`, one at a time,
  from one thread and from N threads sharing the publisher;
- ``pika publish_many``: :meth:`~hubbub.producers.Publisher.publish_many`,
  confirms pipelined.

Each mode runs ``--rounds`` times (after a warm-up); the median is printed.
Everything declared is deleted at the end.

    .venv/bin/python -m bench.kombu_publish
    .venv/bin/python -m bench.kombu_publish --events 500 --rounds 1
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import kombu

from hubbub.connection import resolve_urls
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.producers.kombu import KombuPublisher
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader

TOPIC = "bench.published"
DATA = {"user_id": 12345, "email": "someone@example.com", "plan": "pro"}


def main() -> None:
    args = _arguments()
    url = resolve_urls(args.url)[0]
    hub = unique_name("bench-kombu")
    topology = loader.from_mapping(
        {"hub": hub, "subscribers": {"sink": {"handler": "x:y", "topics": ["bench.#"]}}}
    )
    apply(topology, [url])
    print(f"{args.events} events per round, median of {args.rounds} rounds, hub {hub}")
    try:
        for name, run in _modes(hub, url, args.threads):
            run(50)  # warm-up: connections, channels, confirm mode
            rates = [args.events / _timed(run, args.events) for _ in range(args.rounds)]
            print(f"  {name:<28} {statistics.median(rates):>8,.0f} msg/s")
    finally:
        delete_hub(url, topology)


def _modes(hub: str, url: str, threads: int) -> list[tuple[str, Callable[[int], object]]]:
    confirms = {"confirm_publish": True}
    kombu_publisher = KombuPublisher.from_url(hub, url)
    pool = kombu.Connection(url, transport_options=confirms).Pool(limit=threads)
    pooled = KombuPublisher(hub, pool)
    raw = kombu.Connection(url, transport_options=confirms)
    producer = kombu.Producer(raw.default_channel, exchange=kombu.Exchange(hub), auto_declare=False)
    pika_publisher = Publisher(hub, url=url)

    def kombu_one_by_one(n: int) -> None:
        for _ in range(n):
            kombu_publisher.publish(TOPIC, DATA)

    def kombu_threads(n: int) -> None:
        _in_threads(pooled.publish, n, threads)

    def kombu_raw(n: int) -> None:
        for _ in range(n):
            producer.publish(DATA, routing_key=TOPIC, serializer="json", delivery_mode=2)

    def pika_one_by_one(n: int) -> None:
        for _ in range(n):
            pika_publisher.publish(TOPIC, DATA)

    def pika_threads(n: int) -> None:
        _in_threads(pika_publisher.publish, n, threads)

    def pika_many(n: int) -> None:
        pika_publisher.publish_many(OutgoingEvent(TOPIC, DATA) for _ in range(n))

    return [
        ("kombu publish", kombu_one_by_one),
        (f"kombu pool, {threads} threads", kombu_threads),
        ("kombu raw Producer", kombu_raw),
        ("pika publish", pika_one_by_one),
        (f"pika publish, {threads} threads", pika_threads),
        ("pika publish_many", pika_many),
    ]


def _in_threads(publish: Callable[[str, object], object], n: int, threads: int) -> None:
    """``n`` publishes shared among ``threads`` threads, each one event at a time."""
    share = [n // threads + (i < n % threads) for i in range(threads)]
    workers = [
        threading.Thread(target=lambda k=k: [publish(TOPIC, DATA) for _ in range(k)]) for k in share
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def _timed(run: Callable[[int], object], n: int) -> float:
    started = time.perf_counter()
    run(n)
    return time.perf_counter() - started


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="threads of the pool mode")
    parser.add_argument("--url", default=None, help="broker URL (default HUBBUB_URL)")
    return parser.parse_args()


if __name__ == "__main__":
    main()
