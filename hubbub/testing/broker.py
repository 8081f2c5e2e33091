"""Find a real broker for integration tests, and clean up what a test declared.

Order: ``HUBBUB_TEST_URL``; else the local broker on 127.0.0.1:5672; else a
testcontainers RabbitMQ when a Docker engine answers; else an error that
says how to provide one. Integration tests never skip silently.

``HUBBUB_TEST_BROKER=container`` skips the local broker and always starts the
container (``make compose-test`` runs the contract suite that way);
``HUBBUB_TEST_IMAGE`` names its image (default ``rabbitmq:3.13-management``).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from hubbub.errors import BrokerConnectionError, HubbubError
from hubbub.topology.layout import layout
from hubbub.topology.model import Topology
from hubbub.topology.observe import ManagementAPI
from hubbub.transport import open_session

log = logging.getLogger(__name__)

LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_IMAGE = "rabbitmq:3.13-management"
HOW_TO = (
    "no RabbitMQ broker for the integration tests: set HUBBUB_TEST_URL=amqp://user:pw@host:5672/"
    "%2F, start one locally (rabbitmq-server -detached), or run a Docker engine so "
    "testcontainers can start one"
)


class NoBroker(HubbubError):  # noqa: N818 - reads as a sentence in test output
    """No broker could be found or started for integration tests."""


@contextmanager
def test_broker_url() -> Iterator[str]:
    """The URL of a broker to test against (started with testcontainers if need be)."""
    explicit = os.environ.get("HUBBUB_TEST_URL")
    if explicit:
        yield explicit
        return
    forced = os.environ.get("HUBBUB_TEST_BROKER") == "container"
    if not forced and _answers("127.0.0.1", 5672):
        yield LOCAL_URL
        return
    with _container() as url:
        yield url


def unique_name(prefix: str = "t") -> str:
    """A name no other test (or test run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def delete_hub(url: str, topology: Topology) -> None:
    """Delete every exchange and queue the topology declares (test clean-up)."""
    plan = layout(topology)
    session = open_session([url], name="hubbub test clean-up")
    try:
        for queue in plan.queues:
            session.delete_queue(queue.name)
        for exchange in plan.exchanges:
            session.delete_exchange(exchange.name)
        session.delete_queue(topology.names.applied)  # apply's record of what it applied
        session.delete_exchange(topology.names.applied)
        for progress in _replay_progress_queues(url, topology):  # unfinished archive replays
            session.delete_queue(progress)
    finally:
        session.close()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def _container() -> Iterator[str]:
    try:
        from testcontainers.community.rabbitmq import RabbitMqContainer
    except ImportError as exc:  # pragma: no cover - dev extra missing
        raise NoBroker(f"{HOW_TO} (testcontainers is not installed)") from exc
    try:
        container = RabbitMqContainer(os.environ.get("HUBBUB_TEST_IMAGE") or DEFAULT_IMAGE)
        container.with_exposed_ports(15672)  # per-test vhosts and plan use the management API
        container.start()
    except Exception as exc:
        raise NoBroker(f"{HOW_TO} (Docker: {exc})") from exc
    before = os.environ.get("HUBBUB_MANAGEMENT_URL")
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        management = f"http://{host}:{container.get_exposed_port(15672)}"
        os.environ.setdefault("HUBBUB_MANAGEMENT_URL", management)
        yield f"amqp://guest:guest@{host}:{port}/%2F"
    finally:
        if before is None:
            os.environ.pop("HUBBUB_MANAGEMENT_URL", None)
        container.stop()


def _replay_progress_queues(url: str, topology: Topology) -> list[str]:
    """The progress queues of the hub's unfinished archive replays (none without an archive)."""
    if topology.archive is None:
        return []
    api = ManagementAPI([url])
    try:
        rows = api.get(f"queues/{quote(api.vhost, safe='')}?columns=name")
    except BrokerConnectionError:
        return []
    names = topology.names
    return [r["name"] for r in rows if names.parse_replay_progress(r.get("name", "")) is not None]
