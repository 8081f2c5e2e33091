"""One contract, two hubs: every test here runs on the in-memory hub and on the real broker.

A test gets a hub factory; the hub it builds is an InMemoryHub or a LiveHub
(in a vhost of its own) with the same API: decorators, publish,
``run_until_idle()``, ``run_until(done, within=...)``, ``clock.time()`` and
the assertion helpers. A test that passes on the broker and fails in memory
found a bug in the in-memory hub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hubbub.testing import InMemoryHub, LiveHub

Hub = InMemoryHub | LiveHub


@pytest.fixture(params=["memory", pytest.param("broker", marks=pytest.mark.integration)])
def make_hub(request: pytest.FixtureRequest) -> Iterator[Callable[[], Hub]]:
    """Build the hub under test (call it, then decorate subscribers on it)."""
    made: list[Hub] = []
    # Set up before the hubs, so the vhost is deleted only after they closed.
    url = request.getfixturevalue("hubbub_vhost_url") if request.param == "broker" else None

    def make() -> Hub:
        hub: Hub = InMemoryHub("events") if url is None else LiveHub("events", url=url)
        made.append(hub)
        return hub

    yield make
    for hub in made:
        hub.close()
