"""Drive a compose project on the Docker engine of ``make compose-test``.

Everything goes through ``docker``/``docker compose`` commands and the ports
the stack publishes on this host: what an operator has, nothing more. The
host ports are free ones picked here (the machine's own broker holds 5672 and
15672); the images are the stand-ins the script built (HUBBUB_RABBITMQ_IMAGE,
HUBBUB_PYTHON_IMAGE), passed through the compose files' variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pika
import pika.exceptions as pe

from hubbub.errors import HubbubError
from hubbub.producers import OutgoingEvent, Publisher
from tests.support.process import free_port

REPO = Path(__file__).resolve().parents[2]
OUTBOX = "/app/outbox/actions.jsonl"

#: Figures measured by the suite, printed at the end of the run (docs/operations.md).
FIGURES: dict[str, str] = {}


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run ``docker ARGS``; its stdout, or AssertionError with stderr when it fails."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def inspect(container: str) -> dict[str, Any]:
    return json.loads(docker("inspect", container))[0]  # type: ignore[no-any-return]


def health(container: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", container).strip()


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.5) -> float:
    """Poll ``check`` until true; the seconds it took. AssertionError naming ``what`` after
    ``timeout``."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


class Stack:
    """One compose project: ``up``, ``down -v``, its containers, outbox and broker ports."""

    def __init__(self, file: str, amqp_services: Iterable[str]) -> None:
        self.file = str(REPO / file)
        self.project = f"hubbub-{uuid.uuid4().hex[:8]}"
        self.env = dict(os.environ)
        self.amqp: dict[str, int] = {}
        self.management: dict[str, int] = {}
        for index, service in enumerate(amqp_services, start=1):
            suffix = "" if file == "docker-compose.yml" else f"_{index}"
            self.amqp[service], self.management[service] = free_port(), free_port()
            self.env[f"HUBBUB_AMQP_PORT{suffix}"] = str(self.amqp[service])
            self.env[f"HUBBUB_MANAGEMENT_PORT{suffix}"] = str(self.management[service])

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        done = subprocess.run(
            ["docker", "compose", "-f", self.file, "-p", self.project, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
            cwd=REPO,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stderr[-3000:]}\n{self.compose('ps', '-a', check=False)}"
            )
        return done.stdout

    def up(self, *args: str) -> float:
        """``up --build --wait ARGS``; the seconds until every service was healthy."""
        start = time.monotonic()
        self.compose("up", "--build", "--wait", "--wait-timeout", "240", *args, timeout=420)
        return time.monotonic() - start

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "45", check=False)

    def containers(self, service: str, *, all_states: bool = False) -> list[str]:
        """The container ids of a service (running ones unless ``all_states``)."""
        flags = ["-a"] if all_states else []
        return self.compose("ps", "-q", *flags, service).split()

    def url(self, service: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp[service]}/%2F"

    def urls(self) -> str:
        """Every broker of the stack, for a client that fails over (HUBBUB_URL's syntax)."""
        return ",".join(self.url(service) for service in self.amqp)

    def outbox(self, via: str = "notify-support") -> list[dict[str, Any]]:
        """The example's outbox file on the shared app-data volume, read inside a container."""
        container = self.containers(via)[0]
        # No file yet is an empty outbox; a failing exec is an error, not "nothing yet".
        text = docker("exec", container, "sh", "-c", f"cat {OUTBOX} 2>/dev/null; true")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def handled(self, action: str, ids: Iterable[str]) -> list[str]:
        """The ids among ``ids`` that ``action`` wrote to the outbox, once per time."""
        wanted = set(ids)
        records = self.outbox()
        return [r["event_id"] for r in records if r["action"] == action and r["event_id"] in wanted]

    def queue_depth(self, service: str, queue: str) -> int:
        """Ready messages of a queue, through the published AMQP port (a passive declare)."""
        connection = pika.BlockingConnection(pika.URLParameters(self.url(service)))
        try:
            declared = connection.channel().queue_declare(queue, passive=True)
            return int(declared.method.message_count)
        finally:
            connection.close()


def events_handled(container: str) -> int:
    """hubbub_events_handled_total of a consumer container (its /metrics, read inside it)."""
    script = (
        "import urllib.request as u;"
        "print(u.urlopen('http://127.0.0.1:9100/metrics', timeout=5).read().decode())"
    )
    text = docker("exec", container, "python", "-c", script)
    lines = [x for x in text.splitlines() if x.startswith("hubbub_events_handled_total{")]
    return int(sum(float(x.rsplit(" ", 1)[1]) for x in lines))


def signups(count: int) -> list[OutgoingEvent]:
    tag = uuid.uuid4().hex[:6]
    return [
        OutgoingEvent(
            "user.signed_up",
            {"user_id": i, "name": f"u{tag}{i}", "email": f"u{tag}{i}@example.com"},
        )
        for i in range(count)
    ]


class Stream(threading.Thread):
    """Publish signups in small confirmed batches until ``total``; ``confirmed`` holds the
    ids the broker confirmed. A batch that fails (a node went away) is retried with new ids,
    its old ids counted in ``unconfirmed``: only confirmed events are promised."""

    def __init__(self, url: str, total: int, batch: int = 10, pause: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url, self.total, self.batch, self.pause = url, total, batch, pause
        self.confirmed: list[str] = []
        self.unconfirmed = 0
        self.errors: list[str] = []

    def run(self) -> None:
        publisher: Publisher | None = None
        deadline = time.monotonic() + 180
        while len(self.confirmed) < self.total and time.monotonic() < deadline:
            try:
                if publisher is None:
                    publisher = Publisher("events", url=self.url)
                self.confirmed += publisher.publish_many(signups(self.batch))
            except (HubbubError, pe.AMQPError, OSError) as exc:
                self.unconfirmed += self.batch
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if publisher is not None:
                    _close_quietly(publisher)
                publisher = None
                time.sleep(0.5)
            time.sleep(self.pause)
        if publisher is not None:
            _close_quietly(publisher)


def _close_quietly(publisher: Publisher) -> None:
    with contextlib.suppress(HubbubError, pe.AMQPError, OSError):
        publisher.close()
