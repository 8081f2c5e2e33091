"""Write a published message's frames in one go (pika's bytes, less of its overhead).

``Channel.basic_publish`` builds a method object, a frame object per frame,
and encodes every property through generic helpers that pack one field at a
time; for a message with hubbub's properties that is about half of what
publishing costs the client (``bench/README.md``). :func:`publish` writes
the same bytes (tested against pika's own marshalling) directly: the
``Basic.Publish`` method frame, the content header, the body frames, handed
to the connection as one buffer (and, inside
:func:`~hubbub.transport.pika._frames.one_write`, with the rest of the batch).

Header tables are encoded by pika itself (``pika.data.encode_table``), so a
header value pika accepts or refuses is accepted or refused here alike. It
relies on pika 1.x internals (``_adapter_emit_data``, ``_body_max_length``,
the byte and frame counters, the channel's state check): :func:`internals`
names every one for the install-time check
(:func:`hubbub.transport.pika._internals.usable`), and the publisher uses
``basic_publish`` where one is missing.
"""

from __future__ import annotations

import struct

from pika import spec
from pika.channel import Channel
from pika.data import encode_table
from pika.exceptions import ShortStringTooLong

_HEAD = struct.Struct(">BHL")
_PUBLISH = struct.Struct(">IH")  # method id, reserved "ticket"
_CONTENT_HEADER = struct.Struct(">HHQ")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_END = bytes([spec.FRAME_END])

_PUBLISH_ID = spec.Basic.Publish.INDEX
_BASIC = spec.Basic.INDEX
_METHOD, _HEADER, _BODY = spec.FRAME_METHOD, spec.FRAME_HEADER, spec.FRAME_BODY


_CHANNEL = ("_raise_if_not_open", "channel_number", "connection")
_CONNECTION = ("_adapter_emit_data", "_body_max_length", "bytes_sent", "frames_sent")


def internals(channel: object) -> list[tuple[object, str]]:
    """Every pika internal :func:`publish` touches on ``channel``, as ``(owner, attribute)``."""
    connection = getattr(channel, "connection", None)
    return [(channel, name) for name in _CHANNEL] + [(connection, name) for name in _CONNECTION]


def publish(
    channel: Channel,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: spec.BasicProperties | None,
    *,
    mandatory: bool = False,
) -> None:
    """``channel.basic_publish(...)``: the same checks, the same bytes, one write."""
    channel._raise_if_not_open()
    if not isinstance(body, bytes):
        body = body.encode() if isinstance(body, str) else bytes(body)
    number = channel.channel_number
    connection = channel.connection
    method = b"".join(
        (
            _PUBLISH.pack(_PUBLISH_ID, 0),
            _short(exchange, "exchange"),
            _short(routing_key, "routing_key"),
            b"\x01" if mandatory else b"\x00",
        )
    )
    header = _CONTENT_HEADER.pack(_BASIC, 0, len(body)) + encode_properties(properties)
    frames = [_frame(_METHOD, number, method), _frame(_HEADER, number, header)]
    limit = connection._body_max_length
    if len(body) <= limit:
        if body:
            frames.append(_frame(_BODY, number, body))
    else:
        frames += [
            _frame(_BODY, number, body[start : start + limit])
            for start in range(0, len(body), limit)
        ]
    data = b"".join(frames)
    connection.bytes_sent += len(data)
    connection.frames_sent += len(frames)
    connection._adapter_emit_data(data)


def encode_properties(properties: spec.BasicProperties | None) -> bytes:
    """The property flags and list of a content header, as pika encodes them.

    Unrolled in wire order (a loop over the fields cost twice as much).
    """
    if properties is None:
        return b"\x00\x00"
    p = properties
    flags = 0
    pieces: list[bytes] = []
    if p.content_type is not None:
        flags |= 0x8000
        pieces.append(_short(p.content_type, "content_type"))
    if p.content_encoding is not None:
        flags |= 0x4000
        pieces.append(_short(p.content_encoding, "content_encoding"))
    if p.headers is not None:
        flags |= 0x2000
        encode_table(pieces, p.headers)
    if p.delivery_mode is not None:
        flags |= 0x1000
        pieces.append(bytes((p.delivery_mode,)))
    if p.priority is not None:
        flags |= 0x0800
        pieces.append(bytes((p.priority,)))
    if p.correlation_id is not None:
        flags |= 0x0400
        pieces.append(_short(p.correlation_id, "correlation_id"))
    if p.reply_to is not None:
        flags |= 0x0200
        pieces.append(_short(p.reply_to, "reply_to"))
    if p.expiration is not None:
        flags |= 0x0100
        pieces.append(_short(p.expiration, "expiration"))
    if p.message_id is not None:
        flags |= 0x0080
        pieces.append(_short(p.message_id, "message_id"))
    if p.timestamp is not None:
        flags |= 0x0040
        pieces.append(_U64.pack(p.timestamp))
    if p.type is not None:
        flags |= 0x0020
        pieces.append(_short(p.type, "type"))
    if p.user_id is not None:
        flags |= 0x0010
        pieces.append(_short(p.user_id, "user_id"))
    if p.app_id is not None:
        flags |= 0x0008
        pieces.append(_short(p.app_id, "app_id"))
    if p.cluster_id is not None:
        flags |= 0x0004
        pieces.append(_short(p.cluster_id, "cluster_id"))
    return _U16.pack(flags) + b"".join(pieces)


def _short(value: str | bytes, what: str = "value") -> bytes:
    """A short string: length octet and UTF-8 bytes (at most 255, as pika checks)."""
    if isinstance(value, str):
        encoded = value.encode()
    elif isinstance(value, bytes):
        encoded = value
    else:
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if len(encoded) > 255:
        raise ShortStringTooLong(encoded)
    return bytes((len(encoded),)) + encoded


def _frame(kind: int, channel_number: int, payload: bytes) -> bytes:
    return _HEAD.pack(kind, channel_number, len(payload)) + payload + _END
