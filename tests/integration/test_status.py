"""``hubbub status`` against the real broker, with and without the management API."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml
from click.testing import CliRunner
from dlq_support import Failure, park

from hubbub.cli.main import cli
from hubbub.producers import Publisher

pytestmark = pytest.mark.integration


def status(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["--log-level", "ERROR", "status", *args], env=env)


@pytest.fixture
def busy_hub(declare, hub_name, broker_url, run_worker):
    """fast: 1 event in hand (consumer busy); slow: 3 waiting; 2 dead; 1 unrouted; 1 delayed."""
    spec = {
        "hub": hub_name,
        "subscribers": {
            "fast": {"handler": "x:y", "topics": ["job.fast"], "prefetch": 1},
            "slow": {"handler": "x:y", "topics": ["job.slow"]},
        },
    }
    topology = declare(spec)
    release, started = threading.Event(), threading.Event()

    def hold(event):
        started.set()
        release.wait(30)

    run_worker(topology, {"fast": hold}, subscribers=["fast"])
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("job.fast", {})
        for _ in range(3):
            publisher.publish("job.slow", {})
        publisher.publish("job.nobody", {})
        publisher.publish("job.slow", {}, delay="1h")
    park(broker_url, topology, "slow", [Failure("job.slow", {}, ValueError("x"))] * 2)
    assert started.wait(10)
    yield spec
    release.set()


def counts(hub_name: str) -> dict:
    result = status("--hub", hub_name, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    subs = {s["subscriber"]: s for s in data["subscribers"]}
    return {
        "fast": [subs["fast"]["queue"][k] for k in ("ready", "unacked", "consumers")],
        "slow": [subs["slow"]["queue"][k] for k in ("ready", "unacked", "consumers")],
        "slow.dlq": subs["slow"]["dead_letters"]["ready"],
        "unrouted": data["unrouted"]["ready"],
        "delayed": data["delayed"],
        "source": data["source"],
    }


def test_status_shows_each_queue_from_the_management_api(busy_hub, hub_name):
    wanted = {
        "fast": [0, 1, 1],
        "slow": [3, 0, 0],
        "slow.dlq": 2,
        "unrouted": 1,
        "delayed": 1,
        "source": "management API",
    }
    deadline = time.monotonic() + 20  # the API refreshes its counts every ~5 s
    while (found := counts(hub_name)) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found == wanted
    table = status("--hub", hub_name)
    lines = table.output.splitlines()
    assert lines[0] == f"hub {hub_name}  (counts from management API)"
    assert lines[2].split() == ["SUBSCRIBER", "READY", "UNACKED", "CONSUMERS", "DEAD", "LETTERS"]
    assert lines[3].split() == ["fast", "0", "1", "1", "0"]
    assert lines[4].split() == ["slow", "3", "0", "0", "2"]
    assert "unrouted: 1" in table.output and "delayed (in the ladder): 1" in table.output


def test_without_the_management_api_status_falls_back_to_amqp_and_says_so(
    busy_hub, hub_name, tmp_path
):
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(busy_hub))
    no_api = {"HUBBUB_MANAGEMENT_URL": "http://127.0.0.1:9"}
    result = status("--file", str(file), "--json", env=no_api)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"].startswith("AMQP (cannot reach the RabbitMQ management API")
    subs = {s["subscriber"]: s for s in data["subscribers"]}
    assert subs["slow"]["queue"]["ready"] == 3 and subs["slow"]["queue"]["unacked"] is None
    assert subs["fast"]["queue"]["consumers"] == 1
    assert subs["slow"]["dead_letters"]["ready"] == 2
    assert (data["unrouted"]["ready"], data["delayed"]) == (1, 1)
    table = status("--file", str(file), env=no_api)
    assert "unacked counts unknown" in table.output.splitlines()[0]
    bare = status("--hub", hub_name, env=no_api)
    assert bare.exit_code == 1
    assert bare.output.count("\n") == 1 and "give --file topology.yaml" in bare.output
