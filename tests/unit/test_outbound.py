"""The fast publish writes exactly the bytes ``Channel.basic_publish`` writes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pika import spec
from pika.exceptions import ChannelWrongStateError, ShortStringTooLong
from socketless import SocketlessConnection

from hubbub.transport.pika import _outbound as outbound
from hubbub.transport.pika._internals import missing

Connected = SocketlessConnection


def both(
    exchange: str,
    key: str,
    body: bytes,
    props: spec.BasicProperties | None,
    *,
    mandatory: bool = False,
    frame_max: int = 131072,
    number: int = 1,
) -> tuple[Connected, Connected]:
    theirs, ours = Connected(frame_max), Connected(frame_max)
    theirs.open_channel(number).basic_publish(exchange, key, body, props, mandatory)
    outbound.publish(ours.open_channel(number), exchange, key, body, props, mandatory=mandatory)
    return theirs, ours


def same_bytes(theirs: Connected, ours: Connected) -> None:
    assert b"".join(ours.written) == b"".join(theirs.written)
    assert len(ours.written) == 1  # one buffer for the whole message
    assert ours.bytes_sent == theirs.bytes_sent
    assert ours.frames_sent == theirs.frames_sent


EVERY_PROPERTY = spec.BasicProperties(
    content_type="application/json",
    content_encoding="gzip",
    headers={"hubbub-attempt": 2, "x": "y", "when": datetime(2026, 1, 1, tzinfo=timezone.utc)},
    delivery_mode=2,
    priority=7,
    correlation_id="c",
    reply_to="r",
    expiration="1000",
    message_id="m" * 255,
    timestamp=1_795_827_000,
    type="user.signed_up",
    user_id="guest",
    app_id="hubbub@host",
    cluster_id="cl",
)


@pytest.mark.parametrize(
    "props",
    [None, spec.BasicProperties(), EVERY_PROPERTY, spec.BasicProperties(message_id="été")],
)
def test_the_same_bytes_as_pika(props):
    same_bytes(*both("hub", "user.signed_up", b'{"a": 1}', props))


def test_mandatory_empty_body_and_another_channel():
    same_bytes(*both("", "queue", b"", EVERY_PROPERTY, mandatory=True, number=7))


def test_a_body_larger_than_a_frame_is_split_as_pika_splits_it():
    body = bytes(range(256)) * 40  # 10,240 bytes over 4,096-byte frames
    theirs, ours = both("hub", "k", body, None, frame_max=4096)
    same_bytes(theirs, ours)
    assert ours.frames_sent == 2 + 3


_text = st.text(max_size=40)
_optional = st.none() | _text


@settings(max_examples=200, deadline=None)
@given(
    exchange=_text,
    key=_text,
    body=st.binary(max_size=300),
    content_type=_optional,
    correlation_id=_optional,
    message_id=_optional,
    delivery_mode=st.none() | st.integers(1, 2),
    priority=st.none() | st.integers(0, 9),
    timestamp=st.none() | st.integers(0, 2**40),
    headers=st.none() | st.dictionaries(_text, st.integers(-(2**31), 2**31 - 1) | _text),
    mandatory=st.booleans(),
)
def test_any_message_is_written_as_pika_writes_it(
    exchange,
    key,
    body,
    content_type,
    correlation_id,
    message_id,
    delivery_mode,
    priority,
    timestamp,
    headers,
    mandatory,
):
    props = spec.BasicProperties(
        content_type=content_type,
        correlation_id=correlation_id,
        message_id=message_id,
        delivery_mode=delivery_mode,
        priority=priority,
        timestamp=timestamp,
        headers=headers,
    )
    same_bytes(*both(exchange, key, body, props, mandatory=mandatory))


def test_a_closed_channel_refuses_as_pika_does():
    connection = Connected()
    channel = connection.open_channel(1)
    channel._set_state(channel.CLOSED)
    with pytest.raises(ChannelWrongStateError):
        outbound.publish(channel, "hub", "k", b"{}", None)
    assert connection.written == []


def test_bad_properties_raise_and_write_nothing():
    connection = Connected()
    channel = connection.open_channel(1)
    with pytest.raises(ShortStringTooLong):
        outbound.publish(channel, "hub", "k", b"{}", spec.BasicProperties(message_id="x" * 256))
    with pytest.raises(TypeError, match="message_id"):
        outbound.publish(channel, "hub", "k", b"{}", spec.BasicProperties(message_id=5))
    with pytest.raises(ShortStringTooLong):
        outbound.publish(channel, "hub", "k" * 256, b"{}", None)
    assert connection.written == []


def test_only_channels_with_the_internals_it_writes_through_are_supported():
    assert missing(outbound.internals(Connected().open_channel(1))) == []
    assert "NoneType._adapter_emit_data" in missing(outbound.internals(object()))
