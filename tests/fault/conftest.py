"""Fault-test fixtures: a private RabbitMQ node and consumer processes.

The shared broker on 5672 is never stopped or restarted: tests that break a
broker break the suite's own node (tests.support.node.RabbitNode).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology.model import Topology
from tests.support import certificates
from tests.support.node import RabbitNode
from tests.support.process import HubbubProcess, free_port, hubbub_command
from tests.support.recording import FILE_ENV, SLEEP_ENV, Recording

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the fault suite's own, free to stop and restart (~4 s boot).

    It also listens for TLS on ``node.tls_port`` (certificates in ``node.certs``).
    """
    certs = certificates.make(tmp_path_factory.mktemp("certs"))
    tls_port = free_port()
    config = certificates.rabbit_config(certs, tls_port)
    # A unique node name: two runs of the suite on one machine must not collide.
    with RabbitNode(unique_name("hubbub-fault"), config=config) as private:
        private.tls_port = tls_port  # type: ignore[attr-defined]
        private.certs = certs  # type: ignore[attr-defined]
        yield private


@pytest.fixture
def recording(tmp_path: Path) -> Recording:
    return Recording(tmp_path / "record.jsonl")


@pytest.fixture
def consumer(recording: Recording) -> Iterator[Callable[..., HubbubProcess]]:
    """Start a healthy ``hubbub consume`` process (recording handler); killed after the test."""
    started: list[HubbubProcess] = []

    def _start(url: str, file: Path, *args: str, sleep: float = 0, **env: str) -> HubbubProcess:
        environment = {
            **os.environ,
            "HUBBUB_URL": url,
            "HUBBUB_TOPOLOGY": str(file),
            FILE_ENV: str(recording.path),
            SLEEP_ENV: str(sleep),
            **env,
        }
        process = HubbubProcess(
            hubbub_command("consume", *args), env=environment, cwd=REPO, metrics_port=free_port()
        )
        started.append(process.start())
        return process.wait_healthy()

    yield _start
    for process in started:
        process.__exit__(None, None, None)


@pytest.fixture
def cleanup() -> Iterator[Callable[[str, Topology], None]]:
    """Register a hub to delete (on its broker) after the test."""
    hubs: list[tuple[str, Topology]] = []
    yield lambda url, topology: hubs.append((url, topology))
    for url, topology in hubs:
        try:
            delete_hub(url, topology)
        except Exception as exc:  # the node may be down after a failed test
            print(f"cleanup of {topology.hub} failed: {exc}")
