"""Helpers for the core integration tests: recording handlers, raw broker access, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
from pika.adapters.blocking_connection import BlockingChannel

from hubbub.connection import vhost_of
from hubbub.envelope import Event
from hubbub.topology.observe import ManagementAPI


class Recorder:
    """A handler that records every event it is given (thread-safe); ``then`` runs after."""

    def __init__(self, then: Callable[[Event], Any] | None = None) -> None:
        self._cond = threading.Condition()
        self._then = then
        self.events: list[Event] = []

    def __call__(self, event: Event) -> Any:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        return self._then(event) if self._then else None

    def wait_for(self, count: int, timeout: float = 10) -> list[Event]:
        """The first ``count`` events; fails the test when they take longer than ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.events) >= count, timeout):
                seen = [(e.topic, e.data) for e in self.events]
                raise AssertionError(f"{len(seen)} of {count} events in {timeout}s: {seen}")
            return list(self.events[:count])


@contextmanager
def channel(url: str) -> Iterator[BlockingChannel]:
    """A plain pika channel, as any AMQP client in any language would use."""
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        yield connection.channel()


def depth(url: str, queue: str) -> int:
    """Messages ready in ``queue`` (unacked ones are not counted)."""
    with channel(url) as ch:
        return int(ch.queue_declare(queue, passive=True).method.message_count)


def take_all(
    url: str, queue: str
) -> list[tuple[pika.spec.Basic.GetOk, pika.BasicProperties, bytes]]:
    """Remove and return every message ready in ``queue``."""
    found = []
    with channel(url) as ch:
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found.append((method, props, body))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        time.sleep(0.05)


def management(url: str, path: str) -> Any:
    """GET ``/api/<path>`` of the broker's management API.

    hubbub's own client, so HUBBUB_MANAGEMENT_URL (the test broker's API, e.g.
    the RabbitMQ 4.0 node's) wins over the address derived from ``url``.
    """
    return ManagementAPI([url]).get(path)


def consumers_of(url: str, queues: set[str]) -> list[dict[str, Any]]:
    """The management API's consumer records for ``queues``."""
    vhost = quote(vhost_of(url), safe="")
    return [c for c in management(url, f"consumers/{vhost}") if c["queue"]["name"] in queues]


def hubbub(
    *args: str, url: str | None = None, cwd: Path | None = None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the ``hubbub`` command line as a user would, in a fresh process."""
    environment = {**os.environ, "HUBBUB_LOG_LEVEL": "WARNING", **env}
    if url is not None:
        environment["HUBBUB_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "hubbub.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=timeout,
        check=False,
    )


@contextmanager
def consuming(*args: str, url: str, cwd: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    """``hubbub consume ARGS`` in a fresh process, as a container runs it; killed when left."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hubbub.cli.main", "consume", *args],
        cwd=cwd,
        env={**os.environ, "HUBBUB_URL": url, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def terminate(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """SIGTERM ``process`` (as ``docker stop`` does) and wait for it to exit; its stderr."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=timeout)[1]
