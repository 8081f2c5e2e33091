"""``hubbub consume`` running ``async def`` handlers in a child process, against the broker.

The app module is written to the test's own directory; each handler appends
one JSON line per step (``start``, ``done``, ``fail``, ...) to the file named
by ``ASYNC_APP_LOG``, in one ``write`` each, so the test counts what the
child handled by event id.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from core_support import consuming, depth, take_all, terminate, wait_until

from hubbub.consumers import failure
from hubbub.producers import OutgoingEvent, Publisher
from tests.support.recording import written_lines

pytestmark = pytest.mark.integration

ASYNC_APP = """
import asyncio
import json
import os
import time

import hubbub

active = 0


async def work(event):
    global active
    active += 1
    _log("start", event, active=active)
    try:
        await asyncio.sleep(event.data.get("sleep", 0))
    finally:
        active -= 1
    _log("done", event)


async def fail(event):
    _log("fail", event)
    await asyncio.sleep(0)
    raise ValueError(f"declined {event.data['n']}")


async def relay(event):
    relayed = await hubbub.apublish("order.relayed", {"n": event.data["n"]})
    _log("relay", event, relayed=relayed)


async def hang_or_work(event):
    if event.data.get("hang"):
        _log("hang", event)
        await asyncio.sleep(100)
    _log("done", event)


def _log(what, event, **extra):
    line = {
        "what": what, "sub": event.subscriber, "id": event.id, "topic": event.topic,
        "attempt": event.attempt, "causation": event.causation_id, "at": time.time(), **extra,
    }
    fd = os.open(os.environ["ASYNC_APP_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (json.dumps(line) + "\\n").encode())
    finally:
        os.close(fd)
"""


class AppLog:
    """The lines the child's handlers wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self, what: str, sub: str | None = None) -> list[dict[str, Any]]:
        rows = [json.loads(x) for x in written_lines(self.path)]
        return [r for r in rows if r["what"] == what and sub in (None, r["sub"])]

    def ids(self, what: str, sub: str | None = None) -> Counter[str]:
        return Counter(r["id"] for r in self.lines(what, sub))


@pytest.fixture
def app(tmp_path: Path) -> AppLog:
    (tmp_path / "async_app.py").write_text(ASYNC_APP)
    return AppLog(tmp_path / "handled.jsonl")


@pytest.fixture
def start(declare, hub_name, broker_url, tmp_path, app):
    """Declare ``subscribers`` (name: options), write the file; ``hubbub consume`` args."""

    def _start(subscribers: dict[str, dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
        spec = {"hub": hub_name, "subscribers": subscribers}
        topology = declare(spec)
        file = tmp_path / "topology.yaml"
        file.write_text(yaml.safe_dump(spec))
        options = {"url": broker_url, "cwd": tmp_path, "ASYNC_APP_LOG": str(app.path)}
        return topology, {"file": str(file), **options}

    return _start


def publish(hub: str, url: str, topic: str, items: list[dict[str, Any]]) -> list[str]:
    with Publisher(hub, url=url) as publisher:
        return publisher.publish_many(OutgoingEvent(topic, data) for data in items)


def running(process, predicate, timeout: float, what: str) -> None:
    """Wait for ``predicate`` while the child runs; fail with its stderr if it exits."""
    wait_until(lambda: process.poll() is not None or predicate(), timeout, what)
    assert process.poll() is None, process.communicate()[1]


def test_each_event_is_handled_once_with_many_tasks_in_flight(start, app, hub_name, broker_url):
    topology, run = start(
        {"work": {"handler": "async_app:work", "topics": ["job"], "concurrency": 8, "prefetch": 20}}
    )
    ids = publish(hub_name, broker_url, "job", [{"n": n, "sleep": 0.2} for n in range(80)])

    with consuming("-f", run.pop("file"), **run) as process:
        running(process, lambda: len(app.ids("done")) >= len(ids), 30, "all 80 handled")
        stderr = terminate(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert app.ids("done") == Counter(dict.fromkeys(ids, 1))  # each once, none twice
    peak = max(r["active"] for r in app.lines("start"))
    assert peak == 8, f"at most {peak} handlers ran at once, concurrency 8"
    assert "prefetch 20, 8 handler tasks" in stderr, stderr
    assert depth(broker_url, topology.names.queue("work")) == 0


def test_a_raising_async_handler_is_retried_then_dead_lettered_with_its_failure(
    start, app, hub_name, broker_url
):
    retry = {"attempts": 3, "backoff": "1s", "jitter": False}
    topology, run = start(
        {"pay": {"handler": "async_app:fail", "topics": ["pay"], "retry": retry, "concurrency": 4}}
    )
    ids = publish(hub_name, broker_url, "pay", [{"n": n} for n in range(3)])
    dlq = topology.names.dead_letter_queue("pay")

    with consuming("-f", run.pop("file"), **run) as process:
        running(process, lambda: depth(broker_url, dlq) == 3, 30, "three dead-lettered")
        stderr = terminate(process)
    assert process.returncode == 0, stderr

    attempts = sorted((r["id"], r["attempt"]) for r in app.lines("fail"))
    assert attempts == sorted((i, a) for i in ids for a in (1, 2, 3))
    parked = {props.message_id: props.headers for _, props, _ in take_all(broker_url, dlq)}
    assert set(parked) == set(ids)
    for n, event_id in enumerate(ids):
        headers = parked[event_id]
        assert headers[failure.REASON] == "attempts exhausted"
        assert headers[failure.EXCEPTION] == "ValueError"
        assert headers[failure.MESSAGE] == f"declined {n}"
        assert headers[failure.SUBSCRIBER] == "pay"
        assert "async_app.py" in headers[failure.TRACEBACK]
    assert depth(broker_url, topology.names.queue("pay")) == 0


def test_apublish_in_an_async_handler_reaches_another_subscriber(start, app, hub_name, broker_url):
    topology, run = start(
        {
            "relay": {"handler": "async_app:relay", "topics": ["order.placed"], "concurrency": 4},
            "audit": {"handler": "async_app:work", "topics": ["order.relayed"], "concurrency": 4},
        }
    )
    ids = publish(hub_name, broker_url, "order.placed", [{"n": n} for n in range(10)])

    with consuming("-f", run.pop("file"), **run) as process:
        running(process, lambda: len(app.lines("done", "audit")) >= 10, 30, "10 audited")
        stderr = terminate(process)
    assert process.returncode == 0, stderr

    relays = {r["id"]: r["relayed"] for r in app.lines("relay")}
    assert set(relays) == set(ids)
    audited = app.lines("done", "audit")
    assert Counter(r["id"] for r in audited) == Counter(dict.fromkeys(relays.values(), 1))
    # each relayed event names the event it came from
    assert {r["id"]: r["causation"] for r in audited} == {new: old for old, new in relays.items()}
    assert all(r["topic"] == "order.relayed" for r in audited)
    for queue in ("relay", "audit"):
        assert depth(broker_url, topology.names.queue(queue)) == 0


def test_sigterm_finishes_the_async_events_in_flight_and_loses_none(
    start, app, hub_name, broker_url
):
    topology, run = start(
        {"work": {"handler": "async_app:work", "topics": ["job"], "concurrency": 4, "prefetch": 8}}
    )
    ids = publish(hub_name, broker_url, "job", [{"n": n, "sleep": 2.0} for n in range(20)])

    with consuming("-f", run.pop("file"), **run) as process:
        running(process, lambda: len(app.ids("start")) >= 4, 20, "four events in flight")
        in_flight = set(app.ids("start"))
        assert not app.ids("done"), "the handlers were meant to still run at the signal"
        stderr = terminate(process)
    assert process.returncode == 0, stderr
    assert "released unfinished" not in stderr

    started, done = app.ids("start"), app.ids("done")
    assert started == done, "an event in flight at SIGTERM was not finished"
    assert set(done) == in_flight, "an event started after SIGTERM"
    assert max(done.values()) == 1
    # ...and acked: every other event (prefetched but not started too) is back.
    left = [props.message_id for _, props, _ in take_all(broker_url, topology.names.queue("work"))]
    assert sorted(left + list(done)) == sorted(ids)


def test_a_time_limit_cancels_a_hung_async_handler_and_the_others_go_on(
    start, app, hub_name, broker_url
):
    spec = {
        "handler": "async_app:hang_or_work",
        "topics": ["job"],
        "timeout": "1s",
        "concurrency": 4,
        "retry": {"attempts": 2, "backoff": "1s", "jitter": False},
    }
    topology, run = start({"work": spec})
    hung, *ok = publish(
        hub_name, broker_url, "job", [{"hang": True}, *({"n": n} for n in range(6))]
    )
    dlq = topology.names.dead_letter_queue("work")

    with consuming("-f", run.pop("file"), "--shutdown-timeout", "5", **run) as process:
        running(process, lambda: set(ok) <= set(app.ids("done")), 20, "the others to run")
        assert depth(broker_url, dlq) == 0, "the others waited for the hung handler"
        running(process, lambda: depth(broker_url, dlq) == 1, 20, "the hung event dead-lettered")
        after = publish(hub_name, broker_url, "job", [{"n": n} for n in range(6, 9)])
        running(process, lambda: set(after) <= set(app.ids("done")), 10, "events after it to run")
        ok += after
        stderr = terminate(process)
    assert process.returncode == 0, stderr
    # Both hung tasks were cancelled at the limit, none left for the shutdown to cancel.
    assert "handler task(s) still running" not in stderr, stderr

    assert sorted(r["attempt"] for r in app.lines("hang")) == [1, 2]  # retried once
    assert hung not in app.ids("done")  # cancelled: the code after the await never ran
    assert app.ids("done") == Counter(dict.fromkeys(ok, 1))
    [(_, props, body)] = take_all(broker_url, dlq)
    assert props.message_id == hung and orjson.loads(body) == {"hang": True}
    assert props.headers[failure.MESSAGE] == "timed out after 1s"
    assert props.headers[failure.REASON] == "attempts exhausted"
    assert props.headers[failure.EXCEPTION] == "hubbub.consumers.watchdog.HandlerTimeoutError"
    assert depth(broker_url, topology.names.queue("work")) == 0
