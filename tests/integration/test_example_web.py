"""The web example (example_app/web.py) served for real: uvicorn in a child process,
a vhost of the test's own, signups posted over HTTP, the async handlers run by the
lifespan's consumer; then SIGTERM, and the lifespan must stop that consumer
cleanly (the twin of tests/unit/test_example_web_memory.py)."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pika
import pytest

from example_app import web
from hubbub import Hub
from tests.support.process import HubbubProcess, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "asyncio.md"
WEB_TOPOLOGY = Path(web.__file__).with_name("web.yaml")
SIGNUPS = 20
#: Seconds each simulated send awaits: long enough that SIGTERM finds five mid-send.
LATENCY = 2.0


def uvicorn(port: int, vhost_url: str, latency: float) -> HubbubProcess:
    env = {"HUBBUB_URL": vhost_url, "EXAMPLE_MAIL_LATENCY": str(latency)}
    argv = [sys.executable, "-m", "uvicorn", "example_app.web:app", "--port", str(port)]
    return HubbubProcess(argv, env={**os.environ, **env}, cwd=REPO)


def wait_for(read: Any, done: Any, *, within: float, server: HubbubProcess) -> Any:
    deadline = time.monotonic() + within
    while True:
        try:
            value = read()
        except httpx2.TransportError:
            value = None
        if value is not None and done(value):
            return value
        if not server.running():
            raise AssertionError(f"the server exited:\n{server.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {within}s ({value}):\n{server.output()}")
        time.sleep(0.05)


def queue_depths(url: str) -> dict[str, tuple[int, int]]:
    """(ready messages, consumers) of each queue of the web hub, straight from the broker."""
    names = web.hub.topology.names
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        depths = {}
        for sub in web.hub.topology.subscribers:
            ok = channel.queue_declare(names.queue(sub.name), passive=True).method
            depths[sub.name] = (ok.message_count, ok.consumer_count)
        return depths
    finally:
        connection.close()


def test_signups_posted_are_welcomed_once_each_and_sigterm_finishes_the_events_in_hand(
    hubbub_vhost_url,
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with uvicorn(port, hubbub_vhost_url, latency=LATENCY) as server, httpx2.Client() as http:
        wait_for(
            lambda: http.get(f"{base}/sent"),
            lambda r: r.status_code == 200,
            within=30,
            server=server,
        )
        # Twenty signups; each handler awaits its "mail server" for LATENCY, side by side.
        posted = [
            http.post(f"{base}/signups", json={"user_id": n, "name": f"U{n}", "email": f"u{n}@x.y"})
            for n in range(SIGNUPS)
        ]
        assert [r.status_code for r in posted] == [202] * SIGNUPS
        ids = [r.json()["event_id"] for r in posted]
        started = time.monotonic()
        sent = wait_for(
            lambda: http.get(f"{base}/sent").json(),
            lambda s: len(s["audit"]) >= SIGNUPS,
            within=60,
            server=server,
        )
        took = time.monotonic() - started
        time.sleep(0.5)  # a duplicate delivery would show up by now
        sent = http.get(f"{base}/sent").json()
        assert Counter(e["event_id"] for e in sent["emails"]) == Counter(ids)  # each exactly once
        assert Counter(a["caused_by"] for a in sent["audit"]) == Counter(ids)
        assert took < SIGNUPS * LATENCY / 4, f"the sends did not overlap: {took:.1f}s"

        # Five more, taken by the consumer and mid-send when the server is told to stop.
        more = [
            http.post(f"{base}/signups", json={"user_id": n, "name": f"V{n}", "email": f"v{n}@x.y"})
            for n in range(5)
        ]
        assert [r.status_code for r in more] == [202] * 5
        wait_for(
            lambda: queue_depths(hubbub_vhost_url)["welcome-email"][0],
            lambda ready: ready == 0,
            within=10,
            server=server,
        )
        server.signal()
        # uvicorn exits by re-raising the signal once its shutdown is complete.
        assert server.wait(60) in (0, -signal.SIGTERM), server.output()
        output = server.output()

    assert "Application shutdown complete" in output, output
    assert "released unfinished" not in output and "Traceback" not in output, output
    # The five in hand finished and were acked (none back in the queue); each
    # published its email.sent, which waits for the audit consumer's next start.
    assert queue_depths(hubbub_vhost_url) == {"welcome-email": (0, 0), "audit-email": (5, 0)}


def test_the_documented_asyncio_service_consumes_until_sigterm(hubbub_vhost_url, tmp_path):
    """docs/asyncio.md's `await hub.consume()` service, run as written, on the web topology."""
    section = DOC.read_text().split("\n## A plain asyncio service", 1)[1]
    (service,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    (tmp_path / "service.py").write_text(service)
    (tmp_path / "topology.yaml").write_text(WEB_TOPOLOGY.read_text())
    hub = Hub.from_file(tmp_path / "topology.yaml", url=hubbub_vhost_url)
    hub.apply()
    for n in range(10):
        hub.publish("user.signed_up", {"user_id": n, "name": f"W{n}", "email": f"w{n}@x.y"})
    hub.close()
    env = {**os.environ, "HUBBUB_URL": hubbub_vhost_url, "EXAMPLE_MAIL_LATENCY": "0.2"}
    with HubbubProcess([sys.executable, "service.py"], env=env, cwd=tmp_path) as service_process:
        # It runs welcome-email alone: each welcome's email.sent waits in audit-email.
        wait_for(
            lambda: queue_depths(hubbub_vhost_url),
            lambda depths: depths == {"welcome-email": (0, 1), "audit-email": (10, 0)},
            within=30,
            server=service_process,
        )
        service_process.signal()
        assert service_process.wait(60) == 0, service_process.output()
        output = service_process.output()
    assert "Traceback" not in output and "WARNING" not in output, output
    assert queue_depths(hubbub_vhost_url) == {"welcome-email": (0, 0), "audit-email": (10, 0)}
