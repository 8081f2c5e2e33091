"""Health and metrics of a running ``hubbub consume`` process, scraped over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hubbub.message import Message, Outbound
from hubbub.producers import Publisher
from tests.support.process import HubbubProcess, free_port, hubbub_command

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def sample(text: str, name: str, default: float | None = None, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    if default is not None:
        return default
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def health(port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBBUB_METRICS_PORT": str(port)}
    return subprocess.run(
        hubbub_command("health"), env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_health_and_metrics_of_a_running_consumer(declare, hub_name, broker_url, tmp_path):
    spec = {
        "hub": hub_name,
        "subscribers": {
            "work": {
                "handler": "tests.support.recording:record",
                "topics": ["job.#"],
                "retry": {"attempts": 1},
            }
        },
    }
    topology = declare(spec)
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(spec))
    port = free_port()
    env = {
        **os.environ,
        "HUBBUB_URL": broker_url,
        "HUBBUB_TOPOLOGY": str(file),
        "HUBBUB_DEPTH_INTERVAL": "1",
        "HUBBUB_LOG_FORMAT": "json",
        "HUBBUB_RECORD_FILE": str(tmp_path / "record.jsonl"),
    }

    assert health(port).returncode == 1  # nothing runs yet
    with HubbubProcess(hubbub_command("consume"), env=env, cwd=REPO, metrics_port=port) as proc:
        proc.wait_healthy()
        ok = health(port)
        assert (ok.returncode, ok.stdout.strip()) == (0, "healthy: consuming work"), ok.stderr

        with Publisher(hub_name, url=broker_url) as publisher:
            publisher.publish("job.good", {})
            publisher.publish("job.good", {})
            # The recording handler needs HUBBUB_RECORD_FILE; a malformed body
            # (not JSON) is dead-lettered at once.
            publisher.send(Outbound(hub_name, "job.bad", _bad_json()))

        def scraped() -> str:
            text = proc.metrics()
            done = sample(text, "hubbub_events_handled_total", 0, subscriber="work")
            dead = sample(text, "hubbub_events_dead_lettered_total", 0, subscriber="work")
            return text if (done, dead) == (2, 1) else ""

        text = _poll(scraped, 20)
        assert sample(text, "hubbub_events_failed_total", subscriber="work", topic="job.bad") == 1
        assert sample(text, "hubbub_handler_duration_seconds_count", subscriber="work") == 3
        assert sample(text, "hubbub_events_in_flight", subscriber="work") == 0
        assert sample(text, "hubbub_connected") == 1
        assert sample(text, "hubbub_connections_total") == 1

        # queue depth is polled every second (HUBBUB_DEPTH_INTERVAL=1)
        def polled() -> str:
            text = proc.metrics()
            return text if sample(text, "hubbub_dead_letter_messages", 0, subscriber="work") else ""

        text = _poll(polled, 10)
        assert sample(text, "hubbub_queue_messages", subscriber="work") == 0
        assert sample(text, "hubbub_queue_consumers", subscriber="work") == 1

        proc.signal()
        assert proc.wait(20) == 0
        log = proc.output()
    bad = health(port)
    assert bad.returncode == 1 and "unhealthy" in bad.stderr
    failure = [line for line in log.splitlines() if '"level": "WARNING"' in line]
    assert failure and re.search(r'"subscriber": "work"', failure[0]), log
    assert '"topic": "job.bad"' in failure[0] and '"attempt": 1' in failure[0]
    assert topology.hub == hub_name


def _bad_json() -> Message:
    return Message(
        b"{not json",
        content_type="application/json",
        delivery_mode=2,
        message_id="bad-1",
        type="job.bad",
    )


def _poll(fetch, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = fetch()
        if text:
            return text
        time.sleep(0.1)
    raise AssertionError("metrics did not reach the expected values in time")
