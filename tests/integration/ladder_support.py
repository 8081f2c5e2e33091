"""Helpers for the delay and retry tests: arrivals with timestamps, queue depths, polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pika

from hubbub.envelope import Event
from hubbub.topology import delay
from hubbub.topology.names import HubNames


class Arrivals:
    """Events a handler saw, with the wall-clock time each arrived (thread-safe)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[tuple[float, Event]] = []

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.items.append((time.time(), event))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[tuple[float, Event]]:
        """The first ``count`` arrivals; fails the test if they take longer than ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= count, timeout):
                seen = [(e.topic, e.attempt) for _, e in self.items]
                raise AssertionError(f"{len(seen)} of {count} events arrived in {timeout}s: {seen}")
            return list(self.items[:count])

    @property
    def events(self) -> list[Event]:
        with self._cond:
            return [e for _, e in self.items]


def connection(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def depth(url: str, *queues: str) -> int:
    """Ready messages in ``queues`` together."""
    with closing(connection(url)) as conn:
        channel = conn.channel()
        return sum(channel.queue_declare(q, passive=True).method.message_count for q in queues)


def consumers(url: str, queue: str) -> int:
    """Consumers attached to ``queue``."""
    with closing(connection(url)) as conn:
        return int(conn.channel().queue_declare(queue, passive=True).method.consumer_count)


def ladder_depth(url: str, hub: str) -> int:
    """Messages waiting in all 28 level queues of ``hub``'s ladder."""
    names = HubNames(hub)
    return depth(url, *(names.level(n) for n in range(delay.LEVELS)))


def take(url: str, queue: str) -> tuple[pika.BasicProperties, bytes] | None:
    """Remove and return one message from ``queue`` (None when it is empty)."""
    with closing(connection(url)) as conn:
        method, props, body = conn.channel().basic_get(queue, auto_ack=True)
        return None if method is None else (props, body)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        time.sleep(0.05)


def subscribers(hub: str, **specs: dict[str, Any]) -> dict[str, Any]:
    """A topology mapping; each spec gets a placeholder handler (tests pass callables)."""
    return {
        "hub": hub,
        "subscribers": {n: {"handler": "tests:handler", **s} for n, s in specs.items()},
    }
