"""Raw pika baseline: N threads, each publishing and waiting for its own confirm.

The shape of many threads calling ``publish()`` (each returns only after
its confirm), written with as little as plain pika allows: one
SelectConnection run by an I/O thread; a publishing thread queues its
message, wakes the I/O thread (once per batch) and sleeps on a bare lock that
the confirm callback releases. Minimal properties, no event building, no
checks: what remains is the cost of the shape itself (thread hand-offs under
one GIL, and N messages in flight at most). Prints msg/s.

    .venv/bin/python -m bench.baseline_pika_threads --threads 32 --events 20000
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import deque

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.frame import Method

from bench import perfkit, rawkit


class ThreadedPublisher:
    """A SelectConnection on its own thread, shared by publishing threads."""

    def __init__(self, target: rawkit.Target) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._incoming: deque[threading.Lock] = deque()
        self._wake_pending = False
        self._unconfirmed: dict[int, threading.Lock] = {}
        self._tag = 0
        self._channel: Channel | None = None
        self.ready = threading.Event()
        self._body = perfkit.body()
        self._connection = SelectConnection(
            pika.URLParameters(target.url), on_open_callback=self._on_open
        )
        self._thread = threading.Thread(target=self._connection.ioloop.start, daemon=True)
        self._thread.start()

    def publish(self) -> None:
        """Publish one message; return after its confirm (any thread)."""
        done = threading.Lock()
        done.acquire()
        with self._lock:
            self._incoming.append(done)
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            self._connection.ioloop.add_callback_threadsafe(self._drain)
        done.acquire()

    def close(self) -> None:
        self._connection.ioloop.add_callback_threadsafe(self._connection.close)
        self._thread.join(10)

    def _on_open(self, connection: SelectConnection) -> None:
        connection.add_on_close_callback(lambda *_: connection.ioloop.stop())
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Channel) -> None:
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: self._confirming(channel))

    def _confirming(self, channel: Channel) -> None:
        self._channel = channel
        self.ready.set()

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
            waiting = list(self._incoming)
            self._incoming.clear()
        assert self._channel is not None
        for done in waiting:
            self._channel.basic_publish(
                self.target.exchange, self.target.routing_key, self._body, rawkit.PROPERTIES
            )
            self._tag += 1
            self._unconfirmed[self._tag] = done

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        tags = (
            [t for t in self._unconfirmed if t <= method.delivery_tag]
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            self._unconfirmed.pop(tag).release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rawkit.arguments(parser)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with rawkit.target(args) as target:
        publisher = ThreadedPublisher(target)
        publisher.ready.wait(30)
        per_thread = [args.events // args.threads] * args.threads
        per_thread[0] += args.events - sum(per_thread)

        def work(count: int) -> None:
            for _ in range(count):
                publisher.publish()

        threads = [threading.Thread(target=work, args=(n,)) for n in per_thread]
        cpu = perfkit.cpu()
        first = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        last = time.time()
        publisher.close()
    seconds = last - first
    perfkit.emit(
        {
            "what": f"pika threads x{args.threads}",
            "events": args.events,
            "seconds": seconds,
            "rate": args.events / seconds,
            "first": first,
            "last": last,
        },
        cpu_since=cpu,
    )


if __name__ == "__main__":
    main()
