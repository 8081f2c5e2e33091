"""Codecs: how an event's data becomes a message body and back, by content type.

JSON (orjson) is the default and is always understood. A hub can publish
with another codec, for every topic or for topics matching a pattern, and
its consumers decode each message with the codec its ``content_type`` names:
a message in a content type a registered codec has is an event like any
other, one in a content type none has is dead-lettered as malformed.

    hub = Hub("shop", codecs=Codecs(topics={"metrics.#": MsgpackCodec()}))

A codec is any object with a ``content_type`` and ``encode``/``decode``
methods (:class:`Codec`); one instance serves every thread. The publishing
and the consuming side need the same codecs (a consumer refuses a content
type it was not given a codec for), so give both the hub's ``codecs=``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Protocol

import orjson

from hubbub import wire
from hubbub.errors import MalformedMessageError, PublishError
from hubbub.message import Message
from hubbub.topology import patterns

#: The content type of hubbub's default codec.
JSON = "application/json"


class Codec(Protocol):
    """Turns event data into a body of ``content_type`` and back (thread-safe).

    ``encode`` raises what it cannot encode (TypeError, ValueError, its own
    error): the publish fails with a PublishError naming it, nothing sent.
    ``decode`` raises for a body it cannot read: the event is dead-lettered
    as malformed.
    """

    content_type: str

    def encode(self, data: Any) -> bytes: ...

    def decode(self, body: bytes) -> Any: ...


class JsonCodec:
    """JSON through orjson: dataclasses, datetimes and UUIDs encode; NaN is refused."""

    content_type = JSON

    def encode(self, data: Any) -> bytes:
        return wire.body(data)  # with the checks that name a bad field

    def decode(self, body: bytes) -> Any:
        return orjson.loads(body)


class MsgpackCodec:
    """MessagePack (``pip install 'hubbub[msgpack]'``): compact, binary-safe (bytes stay bytes)."""

    content_type = "application/msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as exc:
            raise ImportError("MsgpackCodec needs msgpack: pip install 'hubbub[msgpack]'") from exc
        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def encode(self, data: Any) -> bytes:
        packed: bytes = self._packb(data)
        return packed

    def decode(self, body: bytes) -> Any:
        return self._unpackb(body)


#: The one JSON codec (stateless): what hubbub publishes with unless told otherwise.
JSON_CODEC = JsonCodec()


class Codecs:
    """A hub's codecs: what each topic is published with, what each content type decodes with.

    ``default`` encodes every topic ``topics`` (pattern -> codec, first
    matching pattern wins, ``#`` and ``*`` as in bindings) does not name.
    Every codec given, and JSON always, decodes its content type; ``accept``
    adds codecs a consumer decodes but this hub does not publish with.
    """

    def __init__(
        self,
        default: Codec = JSON_CODEC,
        *,
        topics: Mapping[str, Codec] | None = None,
        accept: Iterable[Codec] = (),
    ) -> None:
        self.default = default
        self.topics = dict(topics or {})
        problems = [p for pattern in self.topics for p in patterns.pattern_problems(pattern)]
        if problems:
            raise ValueError(f"codecs: {'; '.join(problems)}")
        known = [JSON_CODEC, *accept, *self.topics.values(), default]
        self._by_type = {_base(c.content_type): c for c in known}
        self.encoder = lru_cache(maxsize=4096)(self._encoder)

    def _encoder(self, topic: str) -> Codec | None:
        """The codec ``topic`` is published with; None for JSON (the publishers' fast path)."""
        codec = next((c for p, c in self.topics.items() if patterns.matches(p, topic)), None)
        chosen = codec or self.default
        return None if chosen is JSON_CODEC else chosen

    def decode(self, message: Message) -> Any:
        """The data of ``message``, by its content type; raises MalformedMessageError."""
        content_type = message.content_type
        codec = self._by_type.get(_base(content_type)) if content_type else JSON_CODEC
        if codec is None and _json_like(content_type):
            codec = JSON_CODEC
        if codec is None:
            known = ", ".join(sorted(self._by_type))
            raise MalformedMessageError(
                f"unsupported content type {content_type!r} (this consumer decodes {known}: "
                "give the hub a codec for it with codecs=Codecs(accept=[...]))"
            )
        try:
            return codec.decode(message.body)
        except Exception as exc:
            raise MalformedMessageError(f"body is not valid {codec.content_type}: {exc}") from exc


def encode(codec: Codec, data: Any) -> bytes:
    """``data`` encoded by ``codec``; what it cannot encode is one PublishError, nothing sent."""
    try:
        return codec.encode(data)
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(
            f"cannot publish: data cannot be encoded as {codec.content_type} "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _base(content_type: str | None) -> str:
    """A content type without parameters, lower case (``application/json; charset=utf-8``)."""
    return (content_type or "").split(";")[0].strip().lower()


def _json_like(content_type: str | None) -> bool:
    base = _base(content_type)
    return base == "text/json" or base.endswith("+json")


__all__ = ["JSON", "JSON_CODEC", "Codec", "Codecs", "JsonCodec", "MsgpackCodec", "encode"]
