"""The test fixtures' testcontainers path, for real (hubbub.testing.broker).

With ``HUBBUB_TEST_BROKER=container`` the broker fixture skips the machine's
broker and starts a RabbitMQ container (image ``HUBBUB_TEST_IMAGE``: the
stand-in of ``make compose-test``; Ryuk is off, no registry here) on the
engine DOCKER_HOST names. The contract suite must pass on it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from base64 import b64encode

import pika
import pytest
from compose_support import FIGURES, REPO, docker

from hubbub.testing import broker

pytestmark = pytest.mark.compose

IMAGE = os.environ.get("HUBBUB_TEST_IMAGE", "")


def containers_of_image() -> list[str]:
    return docker("ps", "-q", "--filter", f"ancestor={IMAGE}").split()


def test_the_fixture_starts_and_removes_a_broker_container(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert IMAGE, "HUBBUB_TEST_IMAGE names the stand-in image (make compose-test sets it)"
    monkeypatch.setenv("HUBBUB_TEST_BROKER", "container")
    monkeypatch.delenv("HUBBUB_TEST_URL", raising=False)
    monkeypatch.delenv("HUBBUB_MANAGEMENT_URL", raising=False)
    assert containers_of_image() == []
    with broker.test_broker_url() as url:
        (container,) = containers_of_image()
        port = int(re.search(r":(\d+)/", url)[1])
        assert port != 5672  # not the machine's broker
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            version = str(connection._impl.server_properties["version"])
        finally:
            connection.close()
        management = os.environ["HUBBUB_MANAGEMENT_URL"]
        request = urllib.request.Request(
            f"{management}/api/overview",
            headers={"Authorization": "Basic " + b64encode(b"guest:guest").decode()},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    assert container not in docker("ps", "-aq").split()  # stopped and removed
    FIGURES["testcontainers broker version"] = version


def test_the_contract_suite_passes_on_a_testcontainers_broker() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HUBBUB_TEST_URL", "HUBBUB_URL")}
    env.pop("HUBBUB_MANAGEMENT_URL", None)
    env["HUBBUB_TEST_BROKER"] = "container"
    since = f"{time.time():.0f}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/contract",
            "-m",
            "integration",
            "-q",
            "-p",
            "no:cacheprovider",
            "--tb=short",
            "--show-capture=no",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary)[1])
    assert passed > 0 and "failed" not in summary and "error" not in summary, summary
    FIGURES["contract suite on the testcontainers broker"] = summary.strip("= ")
    assert containers_of_image() == []  # the session's container is gone
    started = docker(
        "events",
        "--since",
        since,
        "--until",
        f"{time.time() + 1:.0f}",
        "--filter",
        "event=start",
        "--filter",
        f"image={IMAGE}",
        "--format",
        "{{.ID}}",
    ).split()
    assert len(started) == 1, started  # one broker container for the whole session
