"""The codec seam: JSON by default, per hub or per topic pattern, decoded by content type."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import msgpack
import pytest

from hubbub import Codecs, OutgoingEvent
from hubbub.codecs import JSON, JSON_CODEC, MsgpackCodec
from hubbub.envelope import decode
from hubbub.errors import MalformedMessageError, PublishError
from hubbub.message import Message, Outbound
from hubbub.testing import InMemoryHub

MSGPACK = "application/msgpack"


class Upper:
    """A codec of our own: text, upper-cased on the wire."""

    content_type = "text/x-upper"

    def encode(self, data: Any) -> bytes:
        return str(data).upper().encode()

    def decode(self, body: bytes) -> Any:
        return body.decode().lower()


def _content_types(hub: InMemoryHub, queue: str) -> list[str | None]:
    return [m.content_type for _, m in hub._messages(queue)]


def test_json_is_the_default_and_its_topic_encoder_is_the_fast_path():
    codecs = Codecs()
    assert codecs.encoder("any.topic") is None
    assert codecs.decode(Message(b'{"a": 1}', content_type=JSON)) == {"a": 1}
    assert codecs.decode(Message(b"[1]")) == [1]  # no content type: JSON, as before
    assert codecs.decode(Message(b"[1]", content_type="application/cloudevents+json")) == [1]


def test_a_codec_per_topic_pattern_first_match_wins_else_the_default():
    upper, packed = Upper(), MsgpackCodec()
    codecs = Codecs(upper, topics={"metrics.#": packed, "metrics.cpu": JSON_CODEC})
    assert codecs.encoder("metrics.cpu") is packed
    assert codecs.encoder("order.placed") is upper


def test_an_invalid_topic_pattern_is_refused():
    with pytest.raises(ValueError, match="codecs: "):
        Codecs(topics={"a..b": MsgpackCodec()})


def test_the_consumer_decodes_what_the_content_type_says():
    hub = InMemoryHub("shop", codecs=Codecs(topics={"metrics.#": MsgpackCodec()}))
    hub.subscriber("s", topics=["#"])(lambda event: None)
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    hub.publish("metrics.cpu", {"load": 0.5, "raw": b"\x00\x01"})
    hub.publish("order.placed", {"at": when})
    assert _content_types(hub, "shop.s") == [MSGPACK, JSON]
    hub.run_until_idle()
    assert [e.data for e in hub.handled("s")] == [
        {"load": 0.5, "raw": b"\x00\x01"},
        {"at": "2026-01-01T00:00:00+00:00"},
    ]
    assert [e.data for e in hub.published()] == [e.data for e in hub.handled("s")]


def test_every_publish_path_uses_the_topics_codec():
    hub = InMemoryHub("shop", codecs=Codecs(MsgpackCodec()))
    hub.subscriber("s", topics=["#"])(lambda event: None)
    hub.publish("a", 1)
    hub.publish_many([OutgoingEvent("b", 2)])
    asyncio.run(hub.apublish("c", 3))
    asyncio.run(hub.apublish_many([OutgoingEvent("d", 4)]))
    assert _content_types(hub, "shop.s") == [MSGPACK] * 4
    hub.run_until_idle()
    assert [e.data for e in hub.handled("s")] == [1, 2, 3, 4]


def test_a_foreign_content_type_with_a_registered_codec_is_an_event_not_malformed():
    body = msgpack.packb({"x": 1})
    foreign = Message(body, content_type="application/msgpack; charset=binary")
    assert decode("t", foreign, codecs=Codecs(accept=[MsgpackCodec()])).data == {"x": 1}
    with pytest.raises(MalformedMessageError, match=r"'application/msgpack; charset=binary'"):
        decode("t", foreign, codecs=Codecs())
    with pytest.raises(MalformedMessageError, match="expected JSON"):
        decode("t", foreign)  # no codecs: JSON alone, as before


def test_an_unregistered_content_type_is_dead_lettered_as_malformed_naming_the_fix():
    hub = InMemoryHub("shop", codecs=Codecs(MsgpackCodec()))
    hub.subscriber("s", topics=["t"])(lambda event: None)
    hub.apply()
    hub.broker.publish(
        _outbound(hub, Message(b"HELLO", content_type="text/x-upper", message_id="m1"))
    )
    hub.run_until_idle()
    (dead,) = hub.dead_lettered("s")
    assert dead.record["reason"] == "malformed message"
    assert "codecs=Codecs(accept=[...])" in dead.record["message"]
    assert "application/json, application/msgpack" in dead.record["message"]


def test_a_custom_codec_round_trips_and_a_body_it_cannot_read_is_malformed():
    hub = InMemoryHub("shop", codecs=Codecs(Upper()))
    hub.subscriber("s", topics=["t"])(lambda event: None)
    hub.publish("t", "hello")
    hub.run_until_idle()
    assert [e.data for e in hub.handled("s")] == ["hello"]
    bad = Message(b"\xff", content_type="text/x-upper")
    with pytest.raises(MalformedMessageError, match="body is not valid text/x-upper"):
        decode("t", bad, codecs=Codecs(Upper()))


def test_what_a_codec_cannot_encode_is_one_publish_error_and_nothing_is_sent():
    hub = InMemoryHub("shop", codecs=Codecs(MsgpackCodec()))
    hub.subscriber("s", topics=["t"])(lambda event: None)
    with pytest.raises(PublishError, match="cannot be encoded as application/msgpack") as raised:
        hub.publish("t", {1, 2}, message_id="m1")
    assert raised.value.failed == ["m1"]
    with pytest.raises(PublishError, match="event 1 of the batch"):
        hub.publish_many([OutgoingEvent("t", 1), OutgoingEvent("t", {3})])
    assert hub.published() == []


def test_json_keeps_its_field_naming_errors_through_the_codec_seam():
    hub = InMemoryHub("shop", codecs=Codecs(topics={"m.#": MsgpackCodec()}))
    with pytest.raises(PublishError, match=r"data\['n'\]"):
        hub.publish("t", {"n": float("nan")})


def test_the_msgpack_codec_needs_its_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "msgpack", None)
    with pytest.raises(ImportError, match=r"pip install 'hubbub\[msgpack\]'"):
        MsgpackCodec()


def _outbound(hub: InMemoryHub, message: Message) -> Outbound:
    return Outbound(hub.topology.names.exchange, "t", message)
