"""scripts/broker-ready (what `make test` and .ci/run run first) on a private node that,
like a fresh machine's broker, runs without the management plugin; then stopped."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from hubbub.testing.broker import unique_name
from tests.support.node import RabbitNode
from tests.support.process import free_port

pytestmark = pytest.mark.fault

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "broker-ready"


def overview(api: str) -> dict | None:
    """The management API's /api/overview, or None when nothing answers."""
    request = urllib.request.Request(
        f"{api}/api/overview",
        headers={"Authorization": "Basic " + b64encode(b"guest:guest").decode()},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def broker_ready(node: RabbitNode, api: str) -> subprocess.CompletedProcess[str]:
    env = {
        **node.environment,
        "HUBBUB_RABBITMQ_SCRIPTS": str(node.scripts),
        "HUBBUB_MANAGEMENT_URL": api,
        "BROKER_READY_TIMEOUT": "60",
    }
    return subprocess.run(
        [str(SCRIPT)], env=env, cwd=node.dir, capture_output=True, text=True, timeout=150
    )


def test_broker_ready_enables_management_and_starts_a_stopped_node():
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    # Where the API would listen, but the plugin is off: a fresh machine's broker.
    config = [f"management.tcp.port = {api_port}", "management.tcp.ip = 127.0.0.1"]
    with RabbitNode(unique_name("hubbub-ready"), config=config) as node:
        assert overview(api) is None

        enabled = broker_ready(node, api)
        assert enabled.returncode == 0, enabled.stdout + enabled.stderr
        assert "enabling the management plugin" in enabled.stdout
        assert overview(api)["node"] == node.nodename  # type: ignore[index]

        again = broker_ready(node, api)  # all is up: a no-op
        assert (again.returncode, again.stdout, again.stderr) == (0, "", "")

        node.ctl("stop", str(node.pid_file))
        assert not node.accepting and overview(api) is None
        started = broker_ready(node, api)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "starting RabbitMQ" in started.stdout
        assert node.accepting
        assert overview(api)["node"] == node.nodename  # type: ignore[index]
