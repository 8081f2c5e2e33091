"""Against the real broker and the real command line: a handler returning an awaitable is
dead-lettered, never acked; async handlers and bad references are refused at start; a
consumer imports only the handlers of the subscribers it runs."""

from __future__ import annotations

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


async def send_async(event):
    raise AssertionError("never run")


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


async def _work(event):
    raise AssertionError("never run")


def test_a_worker_dead_letters_an_event_whose_handler_returns_a_coroutine(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(
        {"hub": hub_name, "subscribers": {"s": {"handler": "m:f", "topics": ["job"]}}}
    )  # the default policy retries 5 times: this failure must not use them
    called = Recorder(_work)  # a plain callable returning a coroutine
    outcomes = Outcomes()
    run_worker(topology, {"s": called}, observer=outcomes)
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("job", {"n": 1})
    dlq = f"{hub_name}.s.dlq"
    wait_until(lambda: depth(broker_url, dlq) == 1, 10, "the event is dead-lettered")
    ((_, props, _),) = take_all(broker_url, dlq)
    headers = props.headers
    assert props.message_id == event_id
    assert headers[failure.REASON] == "handler returned an awaitable"
    assert headers[failure.EXCEPTION] == "hubbub.errors.AsyncHandlerError"
    assert "returned coroutine _work, which hubbub does not await" in headers[failure.MESSAGE]
    assert headers[ATTEMPT] == 1
    wait_until(lambda: outcomes.actions, 5, "the outcome is recorded")
    assert outcomes.actions == ["dead-letter"]  # never "ack" (metrics count it as failed)
    assert len(called.events) == 1  # not retried
    assert depth(broker_url, f"{hub_name}.s") == 0  # the original was settled, not requeued


def write_app(folder: Path, hub: str, **handlers: str) -> Path:
    (folder / "app.py").write_text(APP)
    (folder / "broken_app.py").write_text(BROKEN)
    subs = {name: {"handler": ref, "topics": ["job"]} for name, ref in handlers.items()}
    path = folder / "topology.yaml"
    path.write_text(yaml.safe_dump({"hub": hub, "subscribers": subs}))
    return path


def test_consume_refuses_an_async_handler_in_one_line(declare, hub_name, broker_url, tmp_path):
    declare({"hub": hub_name, "subscribers": {"s": {"handler": "m:f", "topics": ["job"]}}})
    path = write_app(tmp_path, hub_name, s="app:send_async")
    result = hubbub("consume", "-f", str(path), url=broker_url, cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {path}: subscribers.s.handler: handler 'app:send_async' is an async def: "
        "hubbub does not await handlers yet, so it would never run: "
        "make it a plain def, or wrap it in one that runs the coroutine "
        "(def handler(event): asyncio.run(the_async_handler(event)))"
    ]


def test_validate_reports_async_handlers_signatures_and_dont_retry_typos_at_once(tmp_path):
    path = write_app(tmp_path, "h", a="app:send_async", b="app:no_argument", c="app:send")
    spec = yaml.safe_load(path.read_text())
    spec["subscribers"]["c"]["retry"] = {"dont_retry": ["KeyError", "app.Frod"]}
    path.write_text(yaml.safe_dump(spec))
    result = hubbub("topology", "validate", "-f", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {path}: 3 problems:"
    assert lines[1].startswith("  - subscribers.a.handler: handler 'app:send_async' is an async")
    assert lines[2].startswith(
        "  - subscribers.b.handler: handler 'app:no_argument' must accept exactly one positional"
    )
    assert lines[3] == (
        "  - subscribers.c.retry.dont_retry[1]: cannot import 'app.Frod': app has no attribute "
        "'Frod'"
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
