"""Handlers publishing follow-up events: into memory under test, through the
consumer on the broker, never to a broker from an in-memory test."""

from __future__ import annotations

import threading

import pika
import pytest
import shop_app

import hubbub
from hubbub.testing.broker import unique_name
from hubbub.topology import apply

pytestmark = pytest.mark.integration


@pytest.fixture
def hubbub_topology():
    """The app's own topology: its module-level hub's decorated subscribers."""
    return shop_app.hub.topology


def queue_depths(url: str, queues: list[str]) -> dict[str, int]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        return {q: channel.queue_declare(q, passive=True).method.message_count for q in queues}
    finally:
        connection.close()


def test_an_in_memory_test_keeps_the_apps_module_level_hub_off_the_broker(
    hubbub_vhost_url, memory_hub
):
    # The app's hub is declared on a real broker (HUBBUB_URL names it): were its
    # handlers' publishes to reach it, they would sit in these queues.
    topology = shop_app.hub.topology
    apply(topology, [hubbub_vhost_url])
    names = topology.names
    queues = [names.queue(s.name) for s in topology.subscribers] + [names.unrouted]

    placed = memory_hub.publish("order.placed", {"order": 7})
    memory_hub.run_until_idle()

    assert queue_depths(hubbub_vhost_url, queues) == dict.fromkeys(queues, 0)
    assert [a.outcome for a in memory_hub.attempts()] == ["ack"] * 3
    (confirmed,) = memory_hub.published("order.confirmed")
    (billed,) = memory_hub.published("order.billed")
    (shipped,) = memory_hub.published("order.shipped")
    assert confirmed.causation_id == billed.causation_id == placed
    assert shipped.causation_id == confirmed.id
    assert shipped.correlation_id == placed
    assert [e.id for e in memory_hub.handled("ship")] == [confirmed.id]


def test_hubbub_publish_in_a_consumer_goes_through_and_carries_causation(declare, run_worker):
    hub = unique_name("t-handler-publish")
    # The handler references only name the subscribers: the worker runs the functions below.
    topology = declare(
        {
            "hub": hub,
            "subscribers": {
                "first": {"handler": "shop_app:confirm", "topics": ["job.started"]},
                "second": {"handler": "shop_app:confirm", "topics": ["job.continued"]},
            },
        }
    )
    seen: list[hubbub.Event] = []
    done = threading.Event()

    def first(event):
        hubbub.publish("job.continued", {"step": 2}, headers={"from": "first"})

    def second(event):
        seen.append(event)
        done.set()

    run_worker(topology, {"first": first, "second": second})
    with hubbub.Hub(hub) as publisher:
        started = publisher.publish("job.started", {"step": 1})
        assert done.wait(15), "the event the handler published never arrived"
    (continued,) = seen
    assert continued.data == {"step": 2} and continued.headers["from"] == "first"
    assert continued.causation_id == started
    assert continued.correlation_id == started
