"""hubbub.publish inside handlers, and in-memory hubs keeping every other Hub off the broker.

The module-level hubs below are an app's: built at import, pointed at a port
nothing listens on, so reaching for a broker would fail loudly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import hubbub
from example_app import actions
from hubbub import Hub, HubbubError, OutgoingEvent
from hubbub.current import BrokerOffLimitsError, NotInHandlerError, through
from hubbub.testing import InMemoryHub

NOWHERE = "amqp://guest:guest@127.0.0.1:1/%2F"
TOPOLOGY = Path(actions.__file__).with_name("topology.yaml")

app_hub = Hub("events", url=NOWHERE)
file_hub = Hub.from_file(TOPOLOGY, url=NOWHERE)  # hub "events" too
other_hub = Hub("billing", url=NOWHERE)


def test_hubbub_publish_outside_a_handler_says_where_it_works():
    with pytest.raises(NotInHandlerError) as raised:
        hubbub.publish("user.signed_up", {})
    assert isinstance(raised.value, HubbubError)
    assert str(raised.value) == (
        "hubbub.publish() publishes through the hub that delivered the event being handled, "
        "so it works inside a handler only; use hub.publish() elsewhere"
    )
    with pytest.raises(NotInHandlerError, match=r"use hub\.publish_many\(\) elsewhere"):
        hubbub.publish_many([OutgoingEvent("user.signed_up", {})])


def test_a_module_level_hub_publishes_into_the_in_memory_hub_of_its_name(memory_hub):
    @memory_hub.subscriber("welcome", topics=["user.signed_up"])
    def welcome(event):
        app_hub.publish("email.sent", {"to": event.data["email"]})

    signed_up = app_hub.publish("user.signed_up", {"email": "a@example.com"})
    from_file = file_hub.publish_many([OutgoingEvent("billing.invoice.paid", {"n": 1})])
    memory_hub.run_until_idle()

    assert [a.outcome for a in memory_hub.attempts()] == ["ack"]
    assert [e.id for e in memory_hub.handled("welcome")] == [signed_up]
    (sent,) = memory_hub.published("email.sent")
    assert sent.causation_id == signed_up
    assert [e.id for e in memory_hub.published("billing.#")] == from_file


def test_a_hub_of_another_name_refuses_instead_of_reaching_the_broker(memory_hub):
    with pytest.raises(BrokerOffLimitsError) as raised:
        other_hub.publish("invoice.paid", {})
    assert str(raised.value) == (
        "hub 'billing' would publish to the real broker during an in-memory test (in-memory "
        "hubs: 'events'): build an InMemoryHub('billing') in the test too, or publish with "
        "hubbub.publish() inside handlers"
    )
    with pytest.raises(BrokerOffLimitsError, match="hub 'billing' would publish to"):
        other_hub.publish_many([OutgoingEvent("invoice.paid", {})])
    with pytest.raises(BrokerOffLimitsError, match="hub 'events' would declare its topology on"):
        app_hub.apply()
    with pytest.raises(BrokerOffLimitsError, match="hub 'events' would consume from"):
        file_hub.worker()


def test_asyncio_publishes_stay_in_memory_too(memory_hub):
    event_id = asyncio.run(app_hub.apublish("user.signed_up", {"email": "b@example.com"}))
    assert [e.id for e in memory_hub.published()] == [event_id]


def test_any_in_memory_hub_stands_in_until_it_is_closed():
    with InMemoryHub("events") as memory:
        app_hub.publish("user.deleted", {"user_id": 1})
        assert [e.topic for e in memory.published()] == ["user.deleted"]
    assert app_hub.publisher is not memory.publisher  # its own again (not yet connected)
    assert other_hub.publisher is not memory.publisher


def test_an_async_handler_stays_async_and_publishes_through_its_target():
    async def handler(event):
        return hubbub.current._current("apublish")

    wrapped = through(handler, lambda: app_hub)
    assert asyncio.iscoroutinefunction(wrapped)
    assert asyncio.run(wrapped(None)) is app_hub
    with pytest.raises(hubbub.current.NotInHandlerError):
        asyncio.run(hubbub.apublish("t", {}))
