"""Contract: ``published()`` sees every event the hub sent, however it was sent,
and the live hub and the in-memory hub see the same events."""

from __future__ import annotations

import asyncio

import pytest

import hubbub
from hubbub import OutgoingEvent
from hubbub.testing import InMemoryHub, LiveHub


def test_published_sees_publish_and_publish_many(make_hub):
    hub = make_hub()
    hub.subscriber("orders", topics=["order.placed"])(lambda event: None)

    one = hub.publish("order.placed", {"n": 1})
    many = hub.publish_many(OutgoingEvent("order.placed", {"n": n}) for n in (2, 3))
    (other,) = asyncio.run(hub.apublish_many([OutgoingEvent("order.placed", {"n": 4})]))
    last = hub.publish("order.placed", {"n": 5})

    sent = [one, *many, other, last]
    assert [e.id for e in hub.published()] == sent
    assert [e.data["n"] for e in hub.published("order.*")] == [1, 2, 3, 4, 5]
    hub.run_until_idle()
    assert [e.id for e in hub.handled("orders")] == sent


def test_published_sees_what_handlers_publish_with_their_causation(make_hub):
    hub = make_hub()

    @hub.subscriber("orders", topics=["order.placed"])
    def confirm(event):
        hubbub.publish("order.confirmed", {"n": event.data["n"]}, headers={"by": "confirm"})
        hubbub.publish_many([OutgoingEvent("order.billed", {"n": event.data["n"]})])

    hub.subscriber("later", topics=["order.confirmed", "order.billed"])(lambda event: None)

    placed = [hub.publish("order.placed", {"n": 1})]
    placed += hub.publish_many(OutgoingEvent("order.placed", {"n": n}) for n in (2, 3))
    hub.run_until_idle()

    for topic in ("order.confirmed", "order.billed"):
        caused = hub.published(topic)
        assert [e.data["n"] for e in caused] == [1, 2, 3], topic
        assert [e.causation_id for e in caused] == placed, topic
        assert [e.correlation_id for e in caused] == placed, topic
    assert hub.published("order.confirmed")[0].headers["by"] == "confirm"
    assert len(hub.published()) == 9
    assert len(hub.handled("later")) == 6


def _scenario(hub) -> list[tuple[str, object, str | None, object]]:
    """Publish, publish_many and handlers' publishes on ``hub``; what published() saw."""

    @hub.subscriber("orders", topics=["order.placed"])
    def confirm(event):
        hubbub.publish("order.confirmed", {"n": event.data["n"]}, headers={"by": "confirm"})
        hubbub.publish_many([OutgoingEvent("order.billed", {"n": event.data["n"]})])

    hub.publish("order.placed", {"n": 1}, message_id="p-1", headers={"k": "v"})
    hub.publish_many(
        OutgoingEvent("order.placed", {"n": n}, message_id=f"placed-{n}") for n in (2, 3)
    )
    hub.publish_many([OutgoingEvent("order.unmatched", {"n": 4}, message_id="unmatched-4")])
    hub.run_until_idle()
    return sorted(
        (e.topic, e.data["n"], e.causation_id, e.headers.get("by", e.headers.get("k")))
        for e in hub.published()
    )


@pytest.mark.integration
def test_the_live_hub_and_the_in_memory_hub_record_the_same_events(hubbub_vhost_url):
    memory = InMemoryHub("events")
    try:
        in_memory = _scenario(memory)
    finally:
        memory.close()
    live = LiveHub("events", url=hubbub_vhost_url)
    try:
        on_the_broker = _scenario(live)
    finally:
        live.close()
    assert on_the_broker == in_memory
    assert len(in_memory) == 10
