"""Helpers the fault tests share: topologies, counting, polling."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import yaml

from hubbub.envelope import Event
from hubbub.topology import apply, loader
from hubbub.topology.model import Topology


def recording_spec(hub: str, *, subscriber: str = "work", **options: Any) -> dict[str, Any]:
    """A topology (as a mapping) whose one subscriber runs the recording handler."""
    spec = {"handler": "tests.support.recording:record", "topics": ["job.#"], **options}
    return {"hub": hub, "subscribers": {subscriber: spec}}


def declare_on(url: str, spec: dict[str, Any]) -> Topology:
    topology = loader.from_mapping(spec)
    apply(topology, [url])
    return topology


def write_topology(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def queue_depth(url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of ``queue``, by passive declare."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ok = connection.channel().queue_declare(queue, passive=True).method
        return int(ok.message_count), int(ok.consumer_count)
    finally:
        connection.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


class Tally:
    """A thread-safe handler counting the events it handled (for in-process workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.last = 0.0

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.counts[event.id] += 1
            self.last = time.monotonic()

    def seen(self) -> set[str]:
        with self._lock:
            return set(self.counts)

    def duplicates(self) -> int:
        with self._lock:
            return sum(n - 1 for n in self.counts.values())
