"""The fast inbound path hands consumers exactly what pika's own path would.

Each test feeds the same bytes to a connection reading the pika way and to
one with :func:`hubbub.transport.pika._inbound.install`, and compares what reached the
consumer callback, the other frames pika processed, and the counters its
heartbeat checker reads.
"""

from __future__ import annotations

import decimal
import struct
from datetime import datetime, timezone
from typing import Any

import pika
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pika import frame, spec
from pika.channel import Channel
from pika.connection import Connection
from pika.exceptions import InvalidFrameError
from socketless import SocketlessConnection

from hubbub.message import Message
from hubbub.transport.pika import _inbound as inbound
from hubbub.transport.pika.convert import from_pika

TAG = "ctag-1"


class Connected(SocketlessConnection):
    """Records what reached the consumer and which frames pika processed."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[int, Any, Any, bytes]] = []
        self.processed: list[Any] = []

    def open_channel(self, number: int) -> Channel:
        channel = super().open_channel(number)
        channel._consumers[TAG] = lambda ch, method, props, body: self.received.append(
            (ch.channel_number, vars(method).copy(), vars(props).copy(), body)
        )
        return channel

    def _process_frame(self, frame_value: Any) -> None:
        self.processed.append(type(getattr(frame_value, "method", frame_value)).__name__)
        super()._process_frame(frame_value)


def connections(channels: tuple[int, ...] = (1,)) -> tuple[Connected, Connected]:
    plain, fast = Connected(), Connected()
    for connection in (plain, fast):
        for number in channels:
            connection.open_channel(number)
    assert inbound.install(fast)
    return plain, fast


def feed(connection: Connection, data: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in [*sorted(c for c in cuts if 0 < c < len(data)), len(data)]:
        if cut > start:
            connection._on_data_available(data[start:cut])
            start = cut


def delivery(
    tag: int,
    props: spec.BasicProperties,
    body: bytes,
    *,
    channel: int = 1,
    frame_max: int = 131072,
    consumer: str = TAG,
) -> bytes:
    method = spec.Basic.Deliver(consumer, tag, tag % 2 == 0, "hub", "user.signed_up")
    parts = [
        frame.Method(channel, method).marshal(),
        frame.Header(channel, len(body), props).marshal(),
    ]
    for start in range(0, len(body), frame_max):
        parts.append(frame.Body(channel, body[start : start + frame_max]).marshal())
    return b"".join(parts)


EVERY_PROPERTY = spec.BasicProperties(
    content_type="application/json",
    content_encoding="utf-8",
    headers={
        "text": "héllo",
        "bytes-not-utf8": b"\xff\xfe",
        "int": 7,
        "big": 2**40,
        "negative": -3,
        "flag": True,
        "nested": {"a": 1, "b": ["x", 2, {"c": False}]},
        "list": [1, "two", None],
        "when": datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc),
        "none": None,
        "decimal": decimal.Decimal("1.25"),
    },
    delivery_mode=2,
    priority=5,
    correlation_id="corr",
    reply_to="reply",
    expiration="60000",
    message_id="id-1",
    timestamp=1_795_827_000,
    type="user.signed_up",
    user_id="guest",
    app_id="hubbub@test",
    cluster_id="cluster",
)


def stream() -> bytes:
    return b"".join(
        [
            delivery(1, EVERY_PROPERTY, b'{"user": 1}'),
            delivery(2, spec.BasicProperties(), b""),  # no properties, empty body
            delivery(3, spec.BasicProperties(message_id="\u00e9t\u00e9"), b"x" * 300),
            delivery(4, spec.BasicProperties(headers={}), b"[]", frame_max=7),  # 1 body, 1 frame
            delivery(5, spec.BasicProperties(type="t"), bytes(range(256)) * 3, frame_max=100),
        ]
    )


def test_deliveries_reach_the_consumer_as_pika_delivers_them():
    plain, fast = connections()
    data = stream()
    plain._on_data_available(data)
    fast._on_data_available(data)
    assert len(plain.received) == 5
    assert fast.received == plain.received
    assert fast.bytes_received == plain.bytes_received == len(data)
    assert fast.frames_received == plain.frames_received


class MessageConsumer:
    """A callback offering ``deliver_message``, as the consumer transport's does."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], Message]] = []

    def __call__(self, ch: Channel, method: Any, props: Any, body: bytes) -> None:
        raise AssertionError("the fast reader must hand this consumer a Message")

    def deliver_message(self, method: Any, message: Message) -> None:
        self.messages.append((vars(method).copy(), message))


@pytest.mark.parametrize("cut", [None, 1, 37])
def test_a_message_consumer_gets_what_pika_delivers_as_a_message(cut):
    """No BasicProperties in between: the Message equals from_pika of pika's own delivery."""
    plain, fast = connections()
    consumer = MessageConsumer()
    fast._channels[1]._consumers[TAG] = consumer
    data = stream()
    plain._on_data_available(data)
    feed(fast, data, [] if cut is None else list(range(cut, len(data), cut)))
    expected = [
        (method, from_pika(spec.BasicProperties(**props), body))
        for _, method, props, body in plain.received
    ]
    assert len(expected) == 5
    assert consumer.messages == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), max_size=40))
def test_any_split_of_the_stream_gives_the_same_deliveries(cuts):
    plain, fast = connections()
    data = stream()
    plain._on_data_available(data)
    feed(fast, data, cuts)
    assert fast.received == plain.received
    assert fast.bytes_received == len(data)
    assert fast.frames_received == plain.frames_received


def test_byte_by_byte():
    plain, fast = connections()
    data = stream()
    plain._on_data_available(data)
    feed(fast, data, list(range(len(data))))
    assert fast.received == plain.received


def test_other_frames_go_to_pika_in_order_between_deliveries():
    plain, fast = connections(channels=(1, 2))
    props = spec.BasicProperties(message_id="m")
    data = b"".join(
        [
            delivery(1, props, b"a"),
            frame.Heartbeat().marshal(),
            delivery(1, props, b"b", channel=2),
            frame.Method(1, spec.Basic.Ack(delivery_tag=9, multiple=True)).marshal(),
            delivery(2, props, b"c"),
            frame.Method(2, spec.Channel.Flow(active=True)).marshal(),
        ]
    )
    plain._on_data_available(data)
    feed(fast, data, [5, 40, 41, 90])
    assert [r[0] for r in fast.received] == [1, 2, 1]
    assert fast.received == plain.received
    assert fast.processed == ["Heartbeat", "Ack", "Flow"]
    # pika itself also processes the deliveries' frames: the same others, in the same order
    assert [p for p in plain.processed if p not in ("Deliver", "Header", "Body")] == fast.processed
    assert fast.frames_received == plain.frames_received
    assert fast.written == plain.written  # Channel.Flow was answered the same way


def test_deliveries_interleaved_across_channels():
    plain, fast = connections(channels=(1, 2))
    one = delivery(1, EVERY_PROPERTY, b"1" * 50, frame_max=10)
    two = delivery(1, EVERY_PROPERTY, b"2" * 50, frame_max=10, channel=2)
    frames_one, frames_two = _split_frames(one), _split_frames(two)
    mixed = b"".join(a + b for a, b in zip(frames_one, frames_two, strict=True))
    plain._on_data_available(mixed)
    fast._on_data_available(mixed)
    assert [r[0] for r in fast.received] == [1, 2]
    assert fast.received == plain.received


def test_a_cancelled_consumer_gets_nothing_and_the_delivery_is_rejected_as_pika_does():
    plain, fast = connections()
    for connection in (plain, fast):
        connection._channels[1]._cancelled.add(TAG)
    data = delivery(7, spec.BasicProperties(), b"{}")
    plain._on_data_available(data)
    fast._on_data_available(data)
    assert fast.received == plain.received == []
    assert fast.written == plain.written
    assert len(fast.written) == 1  # the basic.reject


def test_an_unknown_consumer_gets_nothing():
    plain, fast = connections()
    data = delivery(7, spec.BasicProperties(), b"{}", consumer="someone-else")
    plain._on_data_available(data)
    fast._on_data_available(data)
    assert fast.received == plain.received == []
    assert fast.written == plain.written == []


def test_a_bad_frame_end_is_an_error_as_in_pika():
    _plain, fast = connections()
    data = bytearray(delivery(1, spec.BasicProperties(), b"{}"))
    data[-1] = 0
    with pytest.raises(InvalidFrameError):
        fast._on_data_available(bytes(data))


def test_bytes_pika_left_buffered_before_install_are_read_first():
    connection = Connected()
    connection.open_channel(1)
    data = delivery(1, EVERY_PROPERTY, b'{"a": 1}')
    connection._on_data_available(data[:10])  # pika keeps the partial frame
    inbound.install(connection)
    connection._on_data_available(data[10:])
    assert len(connection.received) == 1
    assert connection.received[0][3] == b'{"a": 1}'


def test_install_leaves_an_unknown_connection_alone():
    class Other:
        pass

    assert inbound.install(Other()) is False  # type: ignore[arg-type]


def test_properties_decode_like_pika():
    encoded = b"".join(EVERY_PROPERTY.encode())
    ours = inbound.decode_properties(encoded, 0)
    theirs = spec.BasicProperties().decode(encoded)
    assert isinstance(ours, spec.BasicProperties)
    assert vars(ours) == vars(theirs)


def test_every_field_type_decodes_like_pika():
    """Types pika cannot encode but a broker or another client may send."""
    values = [
        b"d" + struct.pack(">d", 0.5),
        b"f" + struct.pack(">f", 1.5),
        b"b" + struct.pack(">b", -2),
        b"B" + struct.pack(">B", 250),
        b"U" + struct.pack(">h", -300),
        b"u" + struct.pack(">H", 60000),
        b"s" + struct.pack(">h", -7),
        b"i" + struct.pack(">I", 4_000_000_000),
        b"L" + struct.pack(">q", -(2**40)),
        b"x" + struct.pack(">I", 3) + b"\x00\x01\x02",
        b"S" + struct.pack(">I", 2) + b"\xff\xff",  # not UTF-8: bytes, as pika gives
        b"A" + struct.pack(">I", 9) + b"t\x00" + b"I" + struct.pack(">i", -1) + b"V" + b"V",
    ]
    body = b"".join(bytes([1]) + bytes([65 + i]) + value for i, value in enumerate(values))
    encoded = struct.pack(">I", len(body)) + body
    ours, end = inbound.decode_table(encoded, 0)
    theirs, their_end = pika.data.decode_table(encoded, 0)
    assert end == their_end == len(encoded)
    assert ours == theirs
    # pika wraps 64-bit integers in its ``long`` (an int subclass); plain ints here
    assert _types(ours) == _types(theirs)


def _types(table: dict[Any, Any]) -> list[type]:
    return [int if type(v) is pika.compat.long else type(v) for v in table.values()]


def _split_frames(data: bytes) -> list[bytes]:
    frames, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset + 3 : offset + 7], "big")
        frames.append(data[offset : offset + 8 + size])
        offset += 8 + size
    return frames


def test_a_consumer_that_raises_leaves_the_stream_where_pika_leaves_it():
    """The rest of the read is delivered on the next one, as with pika."""
    plain, fast = connections()
    for connection in (plain, fast):
        record = connection._channels[1]._consumers[TAG]
        calls = []

        def flaky(ch, method, props, body, record=record, calls=calls):
            calls.append(method.delivery_tag)
            if len(calls) == 1:
                raise RuntimeError("handler bug")
            record(ch, method, props, body)

        connection._channels[1]._consumers[TAG] = flaky
    props = spec.BasicProperties(message_id="m")
    first = delivery(1, props, b"a") + delivery(2, props, b"b")
    for connection in (plain, fast):
        with pytest.raises(RuntimeError):
            connection._on_data_available(first)
        connection._on_data_available(delivery(3, props, b"c"))
    assert [r[3] for r in fast.received] == [b"b", b"c"]
    assert fast.received == plain.received
    assert fast.bytes_received == plain.bytes_received
