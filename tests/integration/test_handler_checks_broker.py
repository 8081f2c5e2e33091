"""Against the real broker and the real command line: a handler returning an awaitable is
awaited before its ack; generators and bad references are refused at start; a consumer
imports only the handlers of the subscribers it runs."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import yaml
from core_support import Recorder, consuming, depth, hubbub, take_all, terminate, wait_until

from hubbub.consumers import failure
from hubbub.consumers.handling import Outcome
from hubbub.consumers.observer import Observer
from hubbub.envelope import ATTEMPT
from hubbub.producers import Publisher

pytestmark = pytest.mark.integration

APP = """
import os


async def stream_async(event):
    yield event


def send(event):
    with open(os.environ["GOOD_APP_LOG"], "a") as log:
        log.write(f"{event.data['n']}\\n")


def no_argument():
    return None
"""

BROKEN = "raise ImportError(\"No module named 'stripe' (this subscriber's own dependency)\")\n"


class Outcomes(Observer):
    """Every outcome a worker carried out, in order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.actions: list[str] = []

    def finished(self, subscriber: str, outcome: Outcome, seconds: float) -> None:
        with self._lock:
            self.actions.append(outcome.action)


AWAITED: list[int] = []


async def _work(event):
    await asyncio.sleep(0.01)
    AWAITED.append(event.data["n"])
    if event.data["n"] == 2:
        raise ValueError("failed after an await")


def test_a_worker_awaits_a_coroutine_a_plain_handler_returns_before_settling_it(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(
        {
            "hub": hub_name,
            "subscribers": {"s": {"handler": "m:f", "topics": ["job"], "retry": {"attempts": 1}}},
        }
    )
    called = Recorder(_work)  # a plain callable returning a coroutine
    outcomes = Outcomes()
    run_worker(topology, {"s": called}, observer=outcomes)
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("job", {"n": 1})
        failed_id = publisher.publish("job", {"n": 2})
    dlq = f"{hub_name}.s.dlq"
    wait_until(lambda: depth(broker_url, dlq) == 1, 10, "the failed event is dead-lettered")
    wait_until(lambda: len(outcomes.actions) == 2, 5, "both outcomes are recorded")
    assert sorted(AWAITED) == [1, 2]  # the coroutines ran to their end
    assert sorted(outcomes.actions) == ["ack", "dead-letter"]
    ((_, props, _),) = take_all(broker_url, dlq)
    assert props.message_id == failed_id
    assert props.headers[failure.EXCEPTION] == "ValueError"
    assert props.headers[ATTEMPT] == 1
    assert depth(broker_url, f"{hub_name}.s") == 0  # both settled


def write_app(folder: Path, hub: str, **handlers: str) -> Path:
    (folder / "app.py").write_text(APP)
    (folder / "broken_app.py").write_text(BROKEN)
    subs = {name: {"handler": ref, "topics": ["job"]} for name, ref in handlers.items()}
    path = folder / "topology.yaml"
    path.write_text(yaml.safe_dump({"hub": hub, "subscribers": subs}))
    return path


def test_consume_refuses_an_async_generator_in_one_line(declare, hub_name, broker_url, tmp_path):
    declare({"hub": hub_name, "subscribers": {"s": {"handler": "m:f", "topics": ["job"]}}})
    path = write_app(tmp_path, hub_name, s="app:stream_async")
    result = hubbub("consume", "-f", str(path), url=broker_url, cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {path}:4: subscribers.s.handler: handler 'app:stream_async' is a generator "
        "function (it yields), so its body would never run: make it a plain def or an async "
        "def that returns"
    ]


@pytest.mark.same_on_every_version(reason="no broker: validate reads a file, imports handlers")
def test_validate_reports_generators_signatures_and_dont_retry_typos_at_once(tmp_path):
    path = write_app(tmp_path, "h", a="app:stream_async", b="app:no_argument", c="app:send")
    spec = yaml.safe_load(path.read_text())
    spec["subscribers"]["c"]["retry"] = {"dont_retry": ["KeyError", "app.Frod"]}
    path.write_text(yaml.safe_dump(spec))
    result = hubbub("topology", "validate", "-f", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {path}: 3 problems:"
    # Each names its line in the file yaml.safe_dump wrote (keys sorted, lists one per line).
    assert lines[1].startswith(
        f"  - {path}:4: subscribers.a.handler: handler 'app:stream_async' is a generator function"
    )
    assert lines[2].startswith(
        f"  - {path}:8: subscribers.b.handler: handler 'app:no_argument' must accept exactly one "
        "positional"
    )
    assert lines[3] == (
        f"  - {path}:16: subscribers.c.retry.dont_retry[1]: cannot import 'app.Frod': app has "
        "no attribute 'Frod'"
    )


def test_consume_of_one_subscriber_runs_when_another_ones_handler_does_not_import(
    declare, hub_name, broker_url, tmp_path
):
    subs = {"good": {"handler": "m:f", "topics": ["job"]}, "other": {"handler": "m:f",
            "topics": ["job"]}}  # fmt: skip
    declare({"hub": hub_name, "subscribers": subs})
    path = write_app(tmp_path, hub_name, good="app:send", other="broken_app:handle")
    log = tmp_path / "handled.log"

    # validate still imports every handler, and names the broken one
    checked = hubbub("topology", "validate", "-f", str(path), cwd=tmp_path)
    assert checked.returncode == 1
    assert "subscribers.other.handler: cannot import handler 'broken_app:handle'" in (
        checked.stderr
    )

    with consuming(
        "-f", str(path), "-s", "good", url=broker_url, cwd=tmp_path, GOOD_APP_LOG=str(log)
    ) as process:
        with Publisher(hub_name, url=broker_url) as publisher:
            publisher.publish("job", {"n": 7})
        wait_until(
            lambda: process.poll() is not None or (log.exists() and log.read_text()),
            20,
            "the good subscriber handles the event",
        )
        assert process.poll() is None, process.communicate()[1]
        stderr = terminate(process)
    assert process.returncode == 0, stderr
    assert log.read_text() == "7\n"
    wait_until(lambda: depth(broker_url, f"{hub_name}.good") == 0, 5, "the event is acked")
    assert depth(broker_url, f"{hub_name}.other") == 1  # waits for its own consumer
