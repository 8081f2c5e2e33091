"""One event from publish to handler: proves the broker fixtures work."""

from __future__ import annotations

import threading

import pytest

from hubbub.producers import Publisher

pytestmark = pytest.mark.integration


def test_an_event_reaches_its_subscriber(declare, run_worker, hub_name, broker_url):
    topology = declare(
        {
            "hub": hub_name,
            "subscribers": {"welcome": {"handler": "x:y", "topics": ["user.signed_up"]}},
        }
    )
    got = []
    arrived = threading.Event()
    run_worker(topology, {"welcome": lambda e: (got.append(e), arrived.set())})
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("user.signed_up", {"name": "Alice"})
    assert arrived.wait(10)
    assert (got[0].id, got[0].topic, got[0].data, got[0].attempt) == (
        event_id,
        "user.signed_up",
        {"name": "Alice"},
        1,
    )
