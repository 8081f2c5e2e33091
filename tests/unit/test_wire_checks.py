"""Data, headers, ids and topics the wire cannot carry: one PublishError line naming the field.

No broker: every check runs while the event is built, before a connection
is opened (the publishers here point at a closed port, so an event that got
past the checks would fail with a connection error instead).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from hubbub import OutgoingEvent, Publisher
from hubbub.errors import ConfigurationError, PublishError
from hubbub.producers.kombu import KombuPublisher
from hubbub.producers.message import event_message
from hubbub.topology.names import HubNames
from hubbub.wire import body

NAMES = HubNames("shop")
CLOSED = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens: reaching it is a failure


@dataclasses.dataclass
class Line:
    sku: str
    price: Any


#: (data, what the one line says): each a value JSON has no way to carry.
BAD_DATA = [
    ({"total": float("nan")}, "data['total'] is nan; JSON has no NaN or Infinity"),
    ([1, float("inf")], "data[1] is inf; JSON has no NaN or Infinity"),
    ({"a": {"b": [float("-inf")]}}, "data['a']['b'][0] is -inf"),
    (Line("x", float("nan")), "data.price is nan"),
    ({"price": Decimal("9.99")}, "data['price'] is of type Decimal, which JSON cannot carry"),
    ({"raw": b"\x00"}, "data['raw'] is of type bytes, which JSON cannot carry"),
    ({"tags": {"a"}}, "data['tags'] is of type set, which JSON cannot carry: send a list"),
    ({"o": object()}, "data['o'] is of type object, which JSON cannot carry"),
    ({"n": 2**64}, "data['n'] = 18446744073709551616 is beyond 64 bits"),
    ({"n": -(2**63) - 1}, "is beyond 64 bits"),
    ({1: "one"}, "data has the key 1 (int); JSON object keys are strings"),
    ({"s": "caf\udce9"}, "data['s'] is not valid UTF-8 text"),
]


@pytest.mark.parametrize(("data", "says"), BAD_DATA, ids=[s[:24] for _, s in BAD_DATA])
def test_data_json_cannot_carry_is_one_publish_error_naming_the_field(data, says):
    with pytest.raises(PublishError) as caught:
        event_message(NAMES, "order.placed", data, message_id="m1")
    message = str(caught.value)
    assert message.startswith("cannot publish: ") and says in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "data",
    [None, {"email": None}, [None, 1.5, "null"], {"at": datetime(2026, 1, 1, tzinfo=timezone.utc)}],
)
def test_a_real_none_and_what_orjson_writes_are_published(data):
    assert body(data)  # a null that is a None, not a NaN, passes the walk


#: (headers, what the one line says).
BAD_HEADERS = [
    ({"ratio": 1.5}, "header 'ratio' is a float (1.5); AMQP headers here cannot carry floats"),
    ({"k" * 300: "v"}, "is 300 bytes long; AMQP allows at most 255"),
    ({"n": {"deep": [1, 2.5]}}, "header 'n'['deep'][1] is a float (2.5)"),
    ({"big": 2**64}, "header 'big' = 18446744073709551616 (int) cannot travel in an AMQP header"),
    ({"pair": (1, 2)}, "header 'pair' = (1, 2) (tuple) cannot travel"),
    ({"o": object()}, "(object) cannot travel in an AMQP header"),
    ({"s": "\udcff"}, "header 's' is not valid UTF-8 text"),
]


@pytest.mark.parametrize(("headers", "says"), BAD_HEADERS, ids=[s[:24] for _, s in BAD_HEADERS])
def test_headers_pika_cannot_encode_are_one_publish_error_naming_the_header(headers, says):
    with pytest.raises(PublishError) as caught:
        event_message(NAMES, "t", {}, message_id="m1", headers=headers)
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("message_id", "says"),
    [("m" * 300, "message_id is 300 bytes long"), (42, "message_id must be a string, not int")],
)
def test_an_id_amqp_cannot_carry_is_a_publish_error(message_id, says):
    with pytest.raises(PublishError, match=says):
        event_message(NAMES, "t", {}, message_id=message_id)


def test_a_topic_with_a_lone_surrogate_is_one_clear_line_not_a_unicode_error():
    with pytest.raises(ConfigurationError) as caught:
        event_message(NAMES, "user.\udcff", {}, message_id="m1")
    assert "topic 'user.\\udcff' is not valid UTF-8 text" in str(caught.value)
    with pytest.raises(
        ConfigurationError, match="a topic is a string or a list of strings, not int"
    ):
        event_message(NAMES, 7, {}, message_id="m1")  # type: ignore[arg-type]


def publishers() -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("pika", lambda: Publisher("shop", url=CLOSED)),
        ("kombu", lambda: KombuPublisher.from_url("shop", CLOSED)),
    ]


@pytest.mark.parametrize(
    ("name", "make"), publishers(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_publisher_refuses_before_connecting_and_names_the_id(name, make):
    publisher = make()
    with pytest.raises(PublishError, match=r"data\['x'\] is nan") as caught:
        publisher.publish("t", {"x": float("nan")}, message_id="evt-1")
    if name == "pika":  # the pika publisher's errors always carry the ids not confirmed
        assert caught.value.failed == ["evt-1"]
    with pytest.raises(PublishError, match="header 'f' is a float"):
        publisher.publish("t", {}, headers={"f": 0.5})
    with pytest.raises(PublishError, match=r"event 2 of the batch: cannot publish: data\['p'\]"):
        publisher.publish_many(
            [OutgoingEvent("t", {}), OutgoingEvent("t", {}), OutgoingEvent("t", {"p": Decimal(1)})]
        )


def test_a_bad_event_fails_the_batch_listing_an_id_for_every_event():
    events = [OutgoingEvent("t", {}, message_id="a"), OutgoingEvent("t", {"x": {1, 2}})]
    with pytest.raises(PublishError) as caught:
        Publisher("shop", url=CLOSED).publish_many(events)
    assert "nothing of the batch was sent" in str(caught.value)
    assert caught.value.failed[0] == "a" and len(caught.value.failed) == 2
    with pytest.raises(PublishError, match="event 1 of the batch"):
        asyncio.run(Publisher("shop", url=CLOSED).apublish_many(events))
