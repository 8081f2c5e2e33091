"""Message <-> pika.BasicProperties: every property survives the round trip."""

from __future__ import annotations

import pika

from hubbub.message import PROPERTY_NAMES, Message
from hubbub.transport.pika.convert import from_pika, to_pika


def test_every_property_survives_both_ways() -> None:
    values = {name: f"v-{name}" for name in PROPERTY_NAMES}
    values.update(headers={"a": 1, "nested": {"b": [1, 2]}}, delivery_mode=2, priority=5)
    values.update(timestamp=1_700_000_000)
    message = Message(b'{"x": 1}', **values)
    props = to_pika(message)
    assert isinstance(props, pika.BasicProperties)
    assert {name: getattr(props, name) for name in PROPERTY_NAMES} == values
    assert from_pika(props, message.body) == message


def test_absent_properties_stay_absent() -> None:
    props = to_pika(Message(b""))
    assert all(getattr(props, name) is None for name in PROPERTY_NAMES)
    assert from_pika(pika.BasicProperties(), b"") == Message(b"")
