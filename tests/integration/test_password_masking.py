"""No password of a broker URL ever reaches output: errors, logs (any level), CLI.

Each command runs for real, logging at DEBUG (pika's own logs included), with
a password in its URL, and fails (wrong password, closed port, TLS against a
plain port, bad URL option, missing vhost); its whole output is searched for
the password, encoded or not.
"""

from __future__ import annotations

import os
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.process import hubbub_command

pytestmark = pytest.mark.integration

SECRET = "Zq9-s3cr%2Ft"  # URL-encoded: the broker would see "Zq9-s3cr/t"
DECODED = "Zq9-s3cr/t"


def run(args: list[str], url: str, tmp_path, level: str = "DEBUG", fmt: str = "text"):
    env = {
        **os.environ,
        "HUBBUB_URL": url,
        "HUBBUB_LOG_LEVEL": level,
        "HUBBUB_LOG_FORMAT": fmt,
        "HUBBUB_MANAGEMENT_URL": "",
        "HUBBUB_METRICS_PORT": "",
    }
    return subprocess.run(
        hubbub_command(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


@pytest.fixture
def topology_file(tmp_path, hub_name):
    path = tmp_path / "topology.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "hub": hub_name,
                "subscribers": {
                    "s": {"handler": "tests.support.recording:record", "topics": ["a.b"]}
                },
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "where",
    ["wrong-password", "closed-port", "tls-to-plain-port", "bad-url-option", "missing-vhost"],
)
@pytest.mark.parametrize("command", ["publish", "apply", "consume"])
def test_failing_commands_never_print_the_password(
    command, where, topology_file, tmp_path, broker_url
):
    broker = urlsplit(broker_url)
    host = f"{broker.hostname}:{broker.port or 5672}"  # the test broker's, not a fixed port
    url = {
        "wrong-password": f"amqp://guest:{SECRET}@{host}/%2F",
        "closed-port": f"amqp://guest:{SECRET}@127.0.0.1:1/%2F",
        "tls-to-plain-port": f"amqps://guest:{SECRET}@{host}/%2F",
        "bad-url-option": f"amqp://guest:{SECRET}@{host}/%2F?heartbeat=often",
        "missing-vhost": f"amqp://guest:{SECRET}@{host}/no-such-vhost",
    }[where]
    args = {
        "publish": ["publish", "--file", str(topology_file), "a.b", "{}"],
        "apply": ["topology", "apply", "--file", str(topology_file)],
        "consume": ["consume", "--file", str(topology_file)],
    }[command]
    done = run(args, url, tmp_path, fmt="json" if command == "consume" else "text")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert done.stderr.strip().splitlines()[-1].startswith("error: "), output  # one line
    assert SECRET not in output and DECODED not in output, output
    if where in ("wrong-password", "closed-port"):
        assert "guest:***@127.0.0.1" in output, output
