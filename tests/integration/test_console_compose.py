"""The compose file's ``console`` service, run here as compose states it (no Docker engine).

Its command (the Dockerfile's ENTRYPOINT plus ``command``) and environment
are taken from docker-compose.yml; only the broker URL, the topology file
and the port differ outside a container.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from test_compose import interpolate

from tests.support.process import HubbubProcess, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.same_on_every_version(
        reason="what is checked here is the compose file's command and environment; the "
        "console's pages on RabbitMQ 4.0 are tests/integration/test_console_broker.py's"
    ),
]

REPO = Path(__file__).resolve().parents[2]
TOKEN = "compose-console-token"


@pytest.fixture
def service():
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return interpolate(raw, {})["services"]["console"]


def argv(service: dict) -> list[str]:
    return [str(Path(sys.executable).parent / "hubbub"), *service["command"]]


def environment(service: dict, broker_url: str, topology: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    env.update({k: str(v) for k, v in service["environment"].items()})
    env.update(HUBBUB_URL=broker_url, HUBBUB_TOPOLOGY=str(topology), **extra)
    return env


def test_the_service_publishes_a_variable_port_on_loopback_and_checks_its_health(service):
    assert service["command"] == ["console"]
    assert service["ports"] == ["127.0.0.1:8470:8470"]  # ${HUBBUB_CONSOLE_BIND}:${..._PORT}
    assert service["environment"]["HUBBUB_CONSOLE_HOST"] == "0.0.0.0"
    assert "/healthz" in " ".join(service["healthcheck"]["test"])


def test_the_console_service_refuses_to_start_without_a_login_and_serves_with_one(
    service, declare, hub_name, broker_url, tmp_path
):
    topology = tmp_path / "topology.yaml"
    topology.write_text(
        yaml.safe_dump(
            {"hub": hub_name, "subscribers": {"billing": {"handler": "x:y", "topics": ["a.*"]}}}
        )
    )
    declare(topology.read_text())
    port = str(free_port())
    refused = subprocess.run(
        argv(service),
        env=environment(service, broker_url, topology, HUBBUB_CONSOLE_PORT=port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "refusing to listen on 0.0.0.0 without authentication" in refused.stderr
    env = environment(
        service, broker_url, topology, HUBBUB_CONSOLE_PORT=port, HUBBUB_CONSOLE_TOKEN=TOKEN
    )
    with HubbubProcess(argv(service), env=env) as process:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as answer:
                    assert answer.read() == b"ok"
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.running, process.output
                assert time.monotonic() < deadline, process.output
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(  # a POST without a login
                urllib.request.Request(base + "/dlq/billing/purge", data=b"x=1"), timeout=10
            )
        assert caught.value.code == 401
        request = urllib.request.Request(base + "/", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            page = answer.read().decode()
        assert f"Hub {hub_name}" in page and 'data-subscriber="billing"' in page
        assert "guest:guest" not in page
