"""How an event travels as an AMQP message: body = JSON data, metadata in properties."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from hubbub import envelope
from hubbub.envelope import Event, decode, message
from hubbub.errors import MalformedMessageError
from hubbub.message import Message
from hubbub.topology import delay


def test_properties_of_a_fresh_event():
    before = int(time.time())
    props = message("user.signed_up", b"{}", message_id="abc", headers={"tenant": "t1"})
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2  # persistent
    assert props.message_id == "abc"
    assert props.type == "user.signed_up"
    assert props.app_id.startswith("hubbub@")
    assert props.correlation_id == "abc"  # a chain starts with its first event's id
    assert before <= props.timestamp <= int(time.time())
    assert props.headers == {"tenant": "t1"}


def test_a_follow_up_event_carries_its_cause():
    props = message("email.sent", b"{}", message_id="e2", correlation_id="c1", causation_id="e1")
    assert props.correlation_id == "c1"
    assert props.headers == {envelope.CAUSATION: "e1"}
    assert message("x", b"{}", message_id="m").headers is None  # no empty header table


def test_the_body_is_the_data_alone():
    assert envelope.dumps({"user_id": 1, "when": datetime(2024, 1, 2, tzinfo=timezone.utc)}) == (
        b'{"user_id":1,"when":"2024-01-02T00:00:00+00:00"}'
    )


def test_encode_then_decode_round_trips():
    props = message(
        "user.signed_up",
        envelope.dumps({"name": "Alice"}),
        message_id="e2",
        headers={"tenant": "t1"},
        correlation_id="c1",
        causation_id="e1",
    )
    event = decode("user.signed_up", props, subscriber="welcome", redelivered=True)
    assert event == Event(
        topic="user.signed_up",
        data={"name": "Alice"},
        id="e2",
        attempt=1,
        headers={"tenant": "t1"},
        correlation_id="c1",
        causation_id="e1",
        timestamp=datetime.fromtimestamp(props.timestamp, timezone.utc),
        subscriber="welcome",
        redelivered=True,
    )


def test_a_plain_amqp_json_message_without_hubbub_headers_is_an_event():
    event = decode("order.placed", Message(b'{"order": 7}'))
    assert (event.topic, event.data, event.attempt) == ("order.placed", {"order": 7}, 1)
    assert event.id.startswith("amqp-")
    assert event.headers == {}
    assert event.correlation_id is None and event.causation_id is None
    assert event.timestamp is None


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "text/json",
        "application/cloudevents+json",
    ],
)
def test_json_content_types_are_accepted(content_type):
    event = decode("t", Message(b"[1, 2]", content_type=content_type))
    assert event.data == [1, 2]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/octet-stream", "application/x-protobuf"]
)
def test_other_content_types_are_malformed(content_type):
    with pytest.raises(MalformedMessageError, match=f"unsupported content type '{content_type}'"):
        decode("t", Message(b"{}", content_type=content_type))


@pytest.mark.parametrize("body", [b"not json", b"", b"{", b'{"a": 1} trailing', b"\xff\xfe"])
def test_a_body_that_is_not_json_is_malformed(body):
    with pytest.raises(MalformedMessageError, match="body is not valid JSON"):
        decode("t", Message(body, content_type="application/json"))


def test_broker_and_hubbub_headers_are_hidden_from_the_handler():
    headers = {
        "x-death": [{"count": 1, "queue": "q", "reason": "rejected"}],
        "x-first-death-queue": "q",
        "x-last-death-reason": "rejected",
        "x-delivery-count": 2,
        envelope.ATTEMPT: 3,
        envelope.CAUSATION: b"e0",
        "hubbub-failure-exception": "KeyError",
        "x-request-id": "r-1",  # the publisher's own x- header stays
        "tenant": "t1",
    }
    event = decode("t", Message(b"null", headers=headers, message_id="m"))
    assert event.headers == {"x-request-id": "r-1", "tenant": "t1"}
    assert event.attempt == 3
    assert event.causation_id == "e0"  # bytes from the wire are decoded


@pytest.mark.parametrize("attempt", ["nonsense", None, -4, 0])
def test_a_bad_attempt_header_counts_as_the_first_attempt(attempt):
    props = Message(b"1", headers={envelope.ATTEMPT: attempt})
    assert decode("t", props).attempt == 1


def test_the_topic_comes_from_hubbubs_header_else_the_routing_key():
    assert envelope.topic_of("whatever", {envelope.TOPIC: b"user.deleted"}) == "user.deleted"
    assert envelope.topic_of("user.deleted", None) == "user.deleted"
    assert envelope.topic_of(delay.event_key(5, "user.deleted"), {}) == "user.deleted"
    # a retry copy aimed at one queue keeps its topic in the header only
    assert envelope.topic_of(delay.queue_key(5, "welcome"), {envelope.TOPIC: "a.b"}) == "a.b"


def test_without_broker_headers_strips_only_death_records():
    headers = {
        "x-death": [],
        "x-first-death-exchange": "e",
        "x-delivery-count": 1,
        "x-request-id": "r",
        envelope.ATTEMPT: 2,
    }
    assert envelope.without_broker_headers(headers) == {"x-request-id": "r", envelope.ATTEMPT: 2}
    assert envelope.without_broker_headers(None) == {}


def test_a_message_without_an_id_gets_the_same_id_on_every_delivery():
    props = Message(b'{"a": 1}', content_type="application/json", timestamp=1700000000)
    first = decode("user.x", props)
    again = decode("user.x", props)
    other = decode(
        "user.x", Message(b'{"a": 2}', content_type="application/json", timestamp=1700000000)
    )
    assert first.id == again.id
    assert first.id.startswith("amqp-")
    assert other.id != first.id
