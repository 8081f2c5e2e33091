"""Read deliveries off the socket without pika's per-frame overhead.

pika turns received bytes into frames one at a time and, after each frame,
copies the rest of its read buffer (``buffer = buffer[n:]``): with 128 KiB
reads holding hundreds of messages, that copying is quadratic. Every frame
then goes through the callback manager and the channel's content assembler,
and every property through a generic decoder. Together that is most of what
consuming costs a Python client (``bench/README.md``).

:func:`install` replaces one connection's inbound path: frames are cut from
each read by offset (one copy of an incomplete tail at most), a delivery
(``Basic.Deliver``, content header, body frames) is decoded directly and
handed to the channel's consumer callback exactly as pika would call it:
``(channel, Basic.Deliver, BasicProperties, body)``, the same objects, the
same values; or, to a callback that offers ``deliver_message(method,
message)`` (the consumer transport's), as hubbub's own
:class:`~hubbub.message.Message`, built once from the decoded properties
(no ``BasicProperties`` in between). Every other frame (replies, confirms, cancels, heartbeats,
closes) is decoded and processed by pika itself, in order, so the
connection's state machine stays pika's. Deliveries for a consumer that is
not (or no longer) registered are handed to pika's own handling too, which
rejects or logs them as it always did.

It relies on pika 1.x internals (``Connection._on_data_available``,
``_frame_buffer``, ``_process_frame``, ``_channels``, ``Channel._consumers``,
``_cancelled``, ``_on_deliver``); :func:`install` checks every one of them
(:mod:`hubbub.transport.pika._internals`) and, should one be missing, or
``HUBBUB_FAST_FRAMES=0`` ask for it, leaves the connection to pika's own
reading and logs why.
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from functools import cache
from typing import Any

from pika import frame, spec
from pika.channel import Channel
from pika.connection import Connection
from pika.data import decode_value
from pika.exceptions import InvalidFrameError

from hubbub.message import PROPERTY_NAMES, new_message
from hubbub.transport.pika._internals import usable

_HEAD = struct.Struct(">BHL")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_CONTENT_HEADER = struct.Struct(">HHQ")

_METHOD, _HEADER, _BODY = spec.FRAME_METHOD, spec.FRAME_HEADER, spec.FRAME_BODY
_FRAME_END = spec.FRAME_END
_DELIVER = spec.Basic.Deliver.INDEX
_BASIC = spec.Basic.INDEX
_NOT_WHOLE: tuple[int, int, None] = (0, 0, None)
_Deliver = spec.Basic.Deliver
_Properties = spec.BasicProperties


def install(connection: Connection) -> bool:
    """Read ``connection``'s deliveries the fast way from now on (I/O thread only).

    Call it from the connection's open callback. Returns False (and changes
    nothing) when this pika lacks an internal it relies on, or
    ``HUBBUB_FAST_FRAMES=0`` turns it off.
    """
    channel = _sample_channel()
    internals = [
        *((connection, name) for name in _CONNECTION_INTERNALS),
        *((channel, name) for name in _CHANNEL_INTERNALS),
    ]
    if not usable("fast delivery reading", "pika's own frame reading", internals):
        return False
    connection._on_data_available = _Reader(connection).receive
    return True


#: What the reader uses of a connection, and of each of its channels.
_CONNECTION_INTERNALS = (
    "_on_data_available",
    "_frame_buffer",
    "_process_frame",
    "_channels",
    "bytes_received",
    "frames_received",
)
_CHANNEL_INTERNALS = ("_consumers", "_cancelled", "_on_deliver")


class _NoConnection:
    """Just enough of a connection to build a channel that is never opened."""

    callbacks = None


@cache
def _sample_channel() -> Channel:
    """A channel as this pika builds one (its attributes are set in ``__init__``)."""
    return Channel(_NoConnection(), 1, None)


#: A content header's property values, in :data:`~hubbub.message.PROPERTY_NAMES` order.
_Values = list[Any]

#: A whole delivery: channel number, method, property values, body size, body.
_Whole = tuple[int, spec.Basic.Deliver, _Values, int, bytes]


class _Pending:
    """A delivery whose content is still arriving."""

    __slots__ = ("method", "parts", "properties", "received", "size")

    def __init__(self, method: spec.Basic.Deliver) -> None:
        self.method = method
        self.properties: _Values | None = None
        self.size = 0
        self.parts: list[bytes] = []
        self.received = 0


class _Reader:
    """The inbound path of one connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._rest = b""
        self._pending: dict[int, _Pending] = {}

    def receive(self, data: bytes) -> None:
        connection = self._connection
        if connection._frame_buffer:  # left by pika's own loop before install()
            data, connection._frame_buffer = connection._frame_buffer + data, b""
        buffer = self._rest + data if self._rest else data
        end = len(buffer)
        offset = 0
        frames = 0
        try:
            while end - offset >= 8:
                kind, channel_number, size = _HEAD.unpack_from(buffer, offset)
                stop = offset + 8 + size
                if stop > end:
                    break
                if buffer[stop - 1] != _FRAME_END:
                    raise InvalidFrameError("Invalid FRAME_END marker")
                start, offset = offset + 7, stop
                if kind == _BODY:
                    pending = self._pending.get(channel_number)
                    if pending is not None:
                        frames += 1
                        self._body(channel_number, pending, buffer[start : stop - 1])
                        continue
                elif kind == _METHOD and _U32.unpack_from(buffer, start)[0] == _DELIVER:
                    after, count, whole = self._whole(
                        channel_number, buffer, start + 4, offset, end
                    )
                    if whole is not None:  # header and body were in this read too (usual)
                        frames += count
                        offset = after  # before the consumer runs: it may raise
                        self._dispatch(*whole)
                        continue
                    frames += 1
                    self._deliver(channel_number, buffer, start + 4)
                    continue
                elif kind == _HEADER:
                    pending = self._pending.get(channel_number)
                    if pending is not None and pending.properties is None:
                        frames += 1
                        self._header(channel_number, pending, buffer, start)
                        continue
                self._fallback(buffer[start - 7 : stop])  # counts its frame itself
        finally:
            self._rest = buffer[offset:]
            connection.bytes_received += offset
            connection.frames_received += frames

    def _fallback(self, raw: bytes) -> None:
        """Any other frame: decoded and processed by pika."""
        consumed, value = frame.decode_frame(raw)
        if value is None or consumed != len(raw):
            raise InvalidFrameError("undecodable frame")
        self._connection._process_frame(value)

    def _whole(
        self, channel_number: int, buffer: bytes, method_at: int, offset: int, end: int
    ) -> tuple[int, int, _Whole | None]:
        """A delivery whose frames are all in ``buffer``: (offset after, frames, delivery).

        The delivery is None when they are not all there (or anything looks
        unusual): the frame-by-frame path then takes over.
        """
        if end - offset < 8 or channel_number in self._pending:
            return _NOT_WHOLE
        kind, number, size = _HEAD.unpack_from(buffer, offset)
        header_stop = offset + 8 + size
        if kind != _HEADER or number != channel_number or header_stop > end:
            return _NOT_WHOLE
        class_id, _weight, body_size = _CONTENT_HEADER.unpack_from(buffer, offset + 7)
        if class_id != _BASIC or buffer[header_stop - 1] != _FRAME_END:
            return _NOT_WHOLE
        stop = header_stop
        body = b""
        if body_size:
            if end - header_stop < 8:
                return _NOT_WHOLE
            kind, number, size = _HEAD.unpack_from(buffer, header_stop)
            stop = header_stop + 8 + size
            if kind != _BODY or number != channel_number or size != body_size or stop > end:
                return _NOT_WHOLE
            if buffer[stop - 1] != _FRAME_END:
                return _NOT_WHOLE
            body = buffer[header_stop + 7 : stop - 1]
        tag, at = _short_string(buffer, method_at)
        (delivery_tag,) = _U64.unpack_from(buffer, at)
        redelivered = bool(buffer[at + 8] & 1)
        exchange, at = _short_string(buffer, at + 9)
        routing_key, _ = _short_string(buffer, at)
        method = _Deliver(tag, delivery_tag, redelivered, exchange, routing_key)
        properties = decode_values(buffer, offset + 7 + 12)
        return stop, 3 if body_size else 2, (channel_number, method, properties, body_size, body)

    def _deliver(self, channel_number: int, buffer: bytes, offset: int) -> None:
        if channel_number in self._pending:  # a new delivery before the last one's body
            self._unexpected(channel_number)
        tag, offset = _short_string(buffer, offset)
        (delivery_tag,) = _U64.unpack_from(buffer, offset)
        redelivered = bool(buffer[offset + 8] & 1)
        exchange, offset = _short_string(buffer, offset + 9)
        routing_key, _ = _short_string(buffer, offset)
        self._pending[channel_number] = _Pending(
            _Deliver(tag, delivery_tag, redelivered, exchange, routing_key)
        )

    def _header(self, channel_number: int, pending: _Pending, buffer: bytes, start: int) -> None:
        class_id, _weight, size = _CONTENT_HEADER.unpack_from(buffer, start)
        if class_id != _BASIC:
            self._unexpected(channel_number)
            return
        pending.properties = decode_values(buffer, start + 12)
        pending.size = size
        if size == 0:
            self._complete(channel_number, pending, b"")

    def _body(self, channel_number: int, pending: _Pending, fragment: bytes) -> None:
        if pending.properties is None:
            self._unexpected(channel_number)
            return
        pending.received += len(fragment)
        if pending.received >= pending.size and not pending.parts:
            self._complete(channel_number, pending, fragment)
            return
        pending.parts.append(fragment)
        if pending.received >= pending.size:
            self._complete(channel_number, pending, b"".join(pending.parts))

    def _complete(self, channel_number: int, pending: _Pending, body: bytes) -> None:
        del self._pending[channel_number]
        assert pending.properties is not None
        self._dispatch(channel_number, pending.method, pending.properties, pending.size, body)

    def _dispatch(
        self,
        channel_number: int,
        method: spec.Basic.Deliver,
        values: _Values,
        size: int,
        body: bytes,
    ) -> None:
        """Hand a whole delivery to its consumer, as ``Channel._on_deliver`` does."""
        channel = self._connection._channels.get(channel_number)
        if channel is None:  # as pika: a frame for a channel it does not know
            return
        callback = channel._consumers.get(method.consumer_tag)
        if callback is None or method.consumer_tag in channel._cancelled:
            # pika's own handling: reject for a cancelled consumer, log otherwise
            channel._on_deliver(
                frame.Method(channel_number, method),
                frame.Header(channel_number, size, _properties(values)),
                body,
            )
            return
        deliver = getattr(callback, "deliver_message", None)
        if deliver is not None:
            deliver(method, new_message(body, *values))
        else:
            callback(channel, method, _properties(values), body)

    def _unexpected(self, channel_number: int) -> None:
        """A content frame out of order: dropped, as pika's assembler does."""
        self._pending.pop(channel_number, None)


def _short_string(buffer: bytes, offset: int) -> tuple[str | bytes, int]:
    """A short string at ``offset``: text when it is UTF-8 (as pika decodes it)."""
    stop = offset + 1 + buffer[offset]
    raw = buffer[offset + 1 : stop]
    try:
        return raw.decode(), stop
    except UnicodeDecodeError:
        return raw, stop


def decode_values(buffer: bytes, offset: int) -> _Values:
    """A content header's property values, as pika decodes them, in wire order."""
    flags = 0
    word = 0
    while True:
        (partial,) = _U16.unpack_from(buffer, offset)
        offset += 2
        flags |= partial << (word * 16)
        if not partial & 1:
            break
        word += 1
    values: _Values = [None] * _PROPERTIES
    if flags & 0x8000:
        values[0], offset = _short_string(buffer, offset)
    if flags & 0x4000:
        values[1], offset = _short_string(buffer, offset)
    if flags & 0x2000:
        values[2], offset = decode_table(buffer, offset)
    if flags & 0x1000:
        values[3] = buffer[offset]
        offset += 1
    if flags & 0x0800:
        values[4] = buffer[offset]
        offset += 1
    if flags & 0x0400:
        values[5], offset = _short_string(buffer, offset)
    if flags & 0x0200:
        values[6], offset = _short_string(buffer, offset)
    if flags & 0x0100:
        values[7], offset = _short_string(buffer, offset)
    if flags & 0x0080:
        values[8], offset = _short_string(buffer, offset)
    if flags & 0x0040:
        (values[9],) = _U64.unpack_from(buffer, offset)
        offset += 8
    if flags & 0x0020:
        values[10], offset = _short_string(buffer, offset)
    if flags & 0x0010:
        values[11], offset = _short_string(buffer, offset)
    if flags & 0x0008:
        values[12], offset = _short_string(buffer, offset)
    if flags & 0x0004:
        values[13], offset = _short_string(buffer, offset)
    return values


def decode_properties(buffer: bytes, offset: int) -> spec.BasicProperties:
    """``BasicProperties`` from a content header's property list, as pika decodes them."""
    return _properties(decode_values(buffer, offset))


_PROPERTIES = len(PROPERTY_NAMES)


def _properties(values: _Values) -> spec.BasicProperties:
    """pika's ``BasicProperties`` holding ``values`` (wire order), as pika builds them."""
    properties = _Properties.__new__(_Properties)
    properties.__dict__ = dict(zip(PROPERTY_NAMES, values, strict=True))
    return properties


def decode_table(buffer: bytes, offset: int) -> tuple[dict[str | bytes, Any], int]:
    """An AMQP field table, as ``pika.data.decode_table`` decodes it.

    The types hubbub and RabbitMQ write (strings, integers, booleans,
    timestamps, tables, arrays) are decoded here; any other is left to pika.
    """
    (size,) = _U32.unpack_from(buffer, offset)
    offset += 4
    stop = offset + size
    table: dict[str | bytes, Any] = {}
    while offset < stop:
        key, offset = _short_string(buffer, offset)
        table[key], offset = _value(buffer, offset)
    return table, offset


def _value(buffer: bytes, offset: int) -> tuple[Any, int]:
    kind = buffer[offset]
    if kind == 0x53:  # S: long string
        (size,) = _U32.unpack_from(buffer, offset + 1)
        start = offset + 5
        raw = buffer[start : start + size]
        try:
            return raw.decode(), start + size
        except UnicodeDecodeError:
            return raw, start + size
    if kind == 0x6C or kind == 0x4C:  # l, L: signed 64-bit (RabbitMQ's reading)
        return _I64.unpack_from(buffer, offset + 1)[0], offset + 9
    if kind == 0x49:  # I: signed 32-bit
        return _I32.unpack_from(buffer, offset + 1)[0], offset + 5
    if kind == 0x74:  # t: boolean
        return buffer[offset + 1] != 0, offset + 2
    if kind == 0x46:  # F: table
        return decode_table(buffer, offset + 1)
    if kind == 0x41:  # A: array
        (size,) = _U32.unpack_from(buffer, offset + 1)
        offset += 5
        stop = offset + size
        items = []
        while offset < stop:
            item, offset = _value(buffer, offset)
            items.append(item)
        return items, offset
    if kind == 0x54:  # T: timestamp
        (seconds,) = _U64.unpack_from(buffer, offset + 1)
        return datetime.fromtimestamp(seconds, timezone.utc), offset + 9
    value, offset = decode_value(buffer, offset)  # the rare types, left to pika
    return value, offset
