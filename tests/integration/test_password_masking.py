"""No password of a broker URL ever reaches output: errors, logs (any level), CLI.

Each command runs for real, logging at DEBUG (pika's own logs included), with
a password in its URL, and fails (wrong password, closed port, TLS against a
plain port, bad URL option, missing vhost); its whole output is searched for
the password, encoded or not.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import yaml

from hubbub.testing.broker import unique_name
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


WHERE = ["wrong-password", "closed-port", "tls-to-plain-port", "bad-url-option", "missing-vhost"]
COMMANDS = ["publish", "apply", "consume"]


@pytest.fixture(scope="module")
def runs(broker_url, tmp_path_factory) -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """Every (command, where) case, run at once (in parallel: each is a fresh Python process)."""
    folder = tmp_path_factory.mktemp("masking")
    topology_file = folder / "topology.yaml"
    topology_file.write_text(
        yaml.safe_dump(
            {
                "hub": unique_name("t-masking"),
                "subscribers": {
                    "s": {"handler": "tests.support.recording:record", "topics": ["a.b"]}
                },
            }
        )
    )
    broker = urlsplit(broker_url)
    host = f"{broker.hostname}:{broker.port or 5672}"  # the test broker's, not a fixed port
    urls = {
        "wrong-password": f"amqp://guest:{SECRET}@{host}/%2F",
        "closed-port": f"amqp://guest:{SECRET}@127.0.0.1:1/%2F",
        "tls-to-plain-port": f"amqps://guest:{SECRET}@{host}/%2F",
        "bad-url-option": f"amqp://guest:{SECRET}@{host}/%2F?heartbeat=often",
        "missing-vhost": f"amqp://guest:{SECRET}@{host}/no-such-vhost",
    }
    args = {
        "publish": ["publish", "--file", str(topology_file), "a.b", "{}"],
        "apply": ["topology", "apply", "--file", str(topology_file)],
        "consume": ["consume", "--file", str(topology_file)],
    }

    def case(command: str, where: str) -> subprocess.CompletedProcess[str]:
        fmt = "json" if command == "consume" else "text"
        return run(args[command], urls[where], folder, fmt=fmt)

    cases = [(command, where) for command in COMMANDS for where in WHERE]
    with ThreadPoolExecutor(len(cases)) as pool:
        futures = {key: pool.submit(case, *key) for key in cases}
    return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("command", COMMANDS)
def test_failing_commands_never_print_the_password(command, where, runs):
    done = runs[command, where]
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert done.stderr.strip().splitlines()[-1].startswith("error: "), output  # one line
    assert SECRET not in output and DECODED not in output, output
    if where in ("wrong-password", "closed-port"):
        assert "guest:***@127.0.0.1" in output, output
