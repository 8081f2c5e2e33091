"""An app written the usual way: one module-level Hub, handlers that publish follow-ups.

``confirm`` publishes through the module's own ``hub`` (what apps do today);
``bill`` through ``hubbub.publish`` (the hub that delivered the event). The
hub's URL comes from ``HUBBUB_URL`` when it first publishes.
"""

from __future__ import annotations

import hubbub
from hubbub import Event, Hub, OutgoingEvent

hub = Hub("shop")


@hub.subscriber("confirm", topics=["order.placed"])
def confirm(event: Event) -> None:
    hub.publish("order.confirmed", {"order": event.data["order"]})


@hub.subscriber("bill", topics=["order.placed"])
def bill(event: Event) -> None:
    hubbub.publish_many([OutgoingEvent("order.billed", {"order": event.data["order"]})])


@hub.subscriber("ship", topics=["order.confirmed"])
def ship(event: Event) -> None:
    hubbub.publish("order.shipped", {"order": event.data["order"]})
