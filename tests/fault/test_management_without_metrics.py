"""Counts stay true when the management API gives none (RabbitMQ 4.x metrics off).

RabbitMQ 4.x deprecates the management API's metrics. With
``deprecated_features.permit.management_metrics_collection = false`` its queue
records lose their message and consumer counts and ``/api/consumers`` answers
400: ``hubbub status`` used to show READY 0 for a queue holding 3 events. This
needs a 4.x node with that setting: a private RabbitMQ 4.0.5 node from
``scripts/rabbit4`` (a Debian trixie chroot, built on first use, ~45 s; then
~5 s to start), on free ports and its own node name, stopped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader
from hubbub.topology.observe import ManagementAPI
from tests.support.process import free_port, hubbub_command

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbit4"


@dataclass(frozen=True)
class Node:
    url: str
    management: str


@pytest.fixture(scope="module")
def metricsless() -> Iterator[Node]:
    """A RabbitMQ 4.0 node whose management API keeps no metrics."""
    env = {
        **os.environ,
        "RABBIT4_NAME": unique_name("hubbub-nometrics"),
        "RABBIT4_AMQP_PORT": str(free_port()),
        "RABBIT4_MANAGEMENT_PORT": str(free_port()),
        "RABBIT4_DIST_PORT": str(free_port()),
        "RABBIT4_EPMD_PORT": str(free_port()),
        "RABBIT4_CONF_EXTRA": "deprecated_features.permit.management_metrics_collection = false",
    }
    started = subprocess.run(
        [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    try:
        assert started.returncode == 0, f"scripts/rabbit4 start failed: {started.stderr}"
        yield Node(
            f"amqp://guest:guest@127.0.0.1:{env['RABBIT4_AMQP_PORT']}/%2F",
            f"http://127.0.0.1:{env['RABBIT4_MANAGEMENT_PORT']}",
        )
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, timeout=120, check=False)


@pytest.fixture
def hub(metricsless: Node, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A hub on that node whose subscriber "slow" holds 3 events (no consumer)."""
    spec = {
        "hub": unique_name("t-nometrics"),
        "subscribers": {"slow": {"handler": "x:y", "topics": ["job.slow"]}},
    }
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(spec))
    topology = loader.from_mapping(spec)
    apply(topology, [metricsless.url])
    with Publisher(topology.hub, url=metricsless.url) as publisher:
        for _ in range(3):
            publisher.publish("job.slow", {})
    yield file, topology.hub
    delete_hub(metricsless.url, topology)


def hubbub(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HUBBUB_URL": node.url,
        "HUBBUB_MANAGEMENT_URL": node.management,
        "HUBBUB_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        hubbub_command(*args), env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_node_really_gives_no_counts(metricsless, hub):
    _, name = hub
    api = ManagementAPI([metricsless.url], management_url=metricsless.management)
    (record,) = [q for q in api.get("queues/%2F") if q["name"] == f"{name}.slow"]
    assert "messages" not in record and "messages_ready" not in record
    assert "consumers" not in record


@pytest.mark.parametrize("given", ["file", "hub"])
def test_status_counts_over_amqp_and_says_why(metricsless, hub, given):
    file, name = hub
    where = ["--file", str(file)] if given == "file" else ["--hub", name]
    result = hubbub(metricsless, "status", *where, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"].startswith("AMQP (the management API keeps no metrics")
    (slow,) = data["subscribers"]
    assert (slow["queue"]["ready"], slow["queue"]["consumers"]) == (3, 0)
    assert slow["queue"]["unacked"] is None  # unknown, never a made-up 0
    table = hubbub(metricsless, "status", *where)
    lines = table.stdout.splitlines()
    assert "counts from AMQP (the management API keeps no metrics" in lines[0]
    assert lines[3].split()[:2] == ["slow", "3"]


def test_plan_and_destroy_count_the_events_over_amqp(metricsless, hub, tmp_path):
    file, name = hub
    shrunk = tmp_path / "shrunk.yaml"  # "slow" left the file: its queue is obsolete, kept
    shrunk.write_text(
        yaml.safe_dump(
            {"hub": name, "subscribers": {"fast": {"handler": "x:y", "topics": ["job.fast"]}}}
        )
    )
    planned = hubbub(metricsless, "topology", "plan", "--file", str(shrunk))
    assert f"? obsolete queue {name}.slow: no longer in the topology; kept (3 messages)" in (
        planned.stdout
    )
    assert "the management API keeps no metrics" in planned.stderr
    refused = hubbub(metricsless, "topology", "destroy", "--file", str(file), "--yes")
    assert refused.returncode == 1
    assert f"{name}.slow (3 event(s))" in refused.stderr
    assert "the management API keeps no metrics" in refused.stderr
