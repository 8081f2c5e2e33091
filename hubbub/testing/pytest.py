"""pytest plugin (registered as ``hubbub``): fixtures for testing apps built on hubbub.

Fixtures, all prefixed so they never clash with an app's own:

``hubbub_topology``
    What the hubs below are built from: ``None`` (a hub named ``events``,
    wired by decorators) unless the app's ``conftest.py`` overrides it to
    return a topology file path or a :class:`~hubbub.Topology`.
``memory_hub``
    An :class:`~hubbub.testing.InMemoryHub`: no broker, handlers run when
    the test calls ``run_until_idle()`` or moves ``hub.clock``. During the
    test no other :class:`~hubbub.Hub` of the process reaches a broker: one
    of the same name publishes into it, any other raises (see
    :mod:`hubbub.current`). That holds for any ``InMemoryHub`` a test builds,
    until it is closed or the test ends.
``hubbub_broker_url`` (session)
    A real broker: ``HUBBUB_TEST_URL``, else the local one on
    127.0.0.1:5672, else a testcontainers RabbitMQ when a Docker engine
    answers, else the test fails saying how to provide one (never a skip).
``hubbub_vhost_url``
    A fresh virtual host on that broker for this test alone (made and
    deleted through the management API), as an AMQP URL; ``HUBBUB_URL``
    points at it during the test so the app's own hubs use it too.
``hubbub_live_hub``
    A :class:`~hubbub.testing.LiveHub` in that vhost: the same assertion
    helpers as ``memory_hub``, a real consumer in a thread, closed after.

Every pytest run of an app with hubbub installed imports this module (the
``pytest11`` entry point), so it imports nothing heavy: the broker client,
pydantic and the hubs load in the fixture that needs them, when a test asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from hubbub import current

if TYPE_CHECKING:
    from pathlib import Path

    from hubbub.testing.live import LiveHub
    from hubbub.testing.memory import InMemoryHub
    from hubbub.topology.model import Topology

    TopologySource = Topology | str | Path | None

#: The hub name used when ``hubbub_topology`` gives none.
DEFAULT_HUB = "events"


@pytest.fixture
def hubbub_topology() -> TopologySource:
    """Override to return the app's topology file (or a Topology); default: none."""
    return None


@pytest.fixture(autouse=True)
def _hubbub_in_memory_hubs_end_with_the_test() -> Iterator[None]:
    """An in-memory hub a test built stops standing in for the broker when the test
    ends, so a later real-broker test in the same session reaches its broker."""
    yield
    current.withdraw()


@pytest.fixture
def memory_hub(hubbub_topology: TopologySource) -> Iterator[InMemoryHub]:
    """An in-memory hub on ``hubbub_topology`` (or an empty hub called ``events``);
    every other hub of the process stays off the broker while the test runs."""
    from hubbub.testing.memory import InMemoryHub

    if hubbub_topology is None:
        hub = InMemoryHub(DEFAULT_HUB)
    else:
        hub = InMemoryHub(topology=hubbub_topology)
    with hub:
        yield hub


@pytest.fixture(scope="session")
def hubbub_broker_url() -> Iterator[str]:
    """A real broker's URL for this test session (see the module docstring)."""
    from hubbub.testing.broker import test_broker_url

    with test_broker_url() as url:
        yield url


@pytest.fixture
def hubbub_vhost_url(hubbub_broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A virtual host of this test's own; deleted, with all it holds, afterwards."""
    from hubbub.testing.vhosts import fresh_vhost

    with fresh_vhost(hubbub_broker_url) as url:
        monkeypatch.setenv("HUBBUB_URL", url)
        yield url


@pytest.fixture
def hubbub_live_hub(hubbub_topology: TopologySource, hubbub_vhost_url: str) -> Iterator[LiveHub]:
    """A real hub in this test's vhost; its consumer starts on first use, stops after."""
    from hubbub.testing.live import LiveHub

    if hubbub_topology is None:
        hub = LiveHub(DEFAULT_HUB, url=hubbub_vhost_url)
    else:
        hub = LiveHub(topology=hubbub_topology, url=hubbub_vhost_url)
    try:
        yield hub
    finally:
        hub.close()
