"""hubbub's own message type: field order, cheap builders, immutability."""

from __future__ import annotations

import dataclasses
import inspect

import pika
import pytest

from hubbub.message import (
    PROPERTY_NAMES,
    Delivery,
    Message,
    new_delivery,
    new_message,
)


def test_property_names_follow_the_amqp_wire_order_pika_uses() -> None:
    # The pika transport converts by position: a reordered field would swap properties.
    assert tuple(inspect.signature(pika.BasicProperties).parameters) == PROPERTY_NAMES


def test_builders_make_what_keyword_construction_makes() -> None:
    values = {name: f"v-{name}" for name in PROPERTY_NAMES}
    built = new_message(b"{}", *values.values())
    assert built == Message(b"{}", **values)
    delivery = new_delivery(7, "events", "user.signed_up", True, built)
    assert delivery == Delivery(7, "events", "user.signed_up", True, built)


def test_a_message_is_changed_by_copy_not_in_place() -> None:
    message = Message(b"{}", headers={"a": 1}, delivery_mode=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.body = b"x"  # type: ignore[misc]
    changed = message.with_headers({"b": 2})
    assert (message.headers, changed.headers) == ({"a": 1}, {"b": 2})
    assert message.with_headers({}).headers is None
    assert message.persistent and not Message(b"").persistent


def test_a_republished_copy_is_persistent_never_expires_and_carries_the_new_headers() -> None:
    values = {name: f"v-{name}" for name in PROPERTY_NAMES}
    values.update(headers={"old": 1}, delivery_mode=1, priority=3, timestamp=5)
    original = Message(b"{}", **values)
    copy = original.republished({"hubbub-attempt": 2})
    assert copy.headers == {"hubbub-attempt": 2} and copy.delivery_mode == 2
    assert (copy.expiration, copy.user_id, copy.cluster_id) == (None, None, None)
    kept = set(PROPERTY_NAMES) - {"headers", "delivery_mode", "expiration", "user_id", "cluster_id"}
    assert {n: getattr(copy, n) for n in kept} == {n: getattr(original, n) for n in kept}
    assert copy.body == original.body
