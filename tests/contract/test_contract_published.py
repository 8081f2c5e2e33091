"""Contract: ``published()`` sees every event the hub sent, however it was sent."""

from __future__ import annotations

import asyncio

import hubbub
from hubbub import OutgoingEvent


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
