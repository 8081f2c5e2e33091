"""The message every publisher sends, and the kombu publisher's pure parts; no broker needed."""

from __future__ import annotations

import amqp
import kombu
import pytest

from hubbub import envelope
from hubbub.errors import ConfigurationError, DelayTooLongError
from hubbub.producers.kombu import KombuPublisher, amqp_properties, refusal, require_confirms
from hubbub.producers.message import delay_seconds, event_message
from hubbub.topology import delay
from hubbub.topology.names import HubNames

NAMES = HubNames("shop")
URL = "amqp://guest:guest@127.0.0.1:5672//"


def test_an_event_goes_to_the_hub_exchange_with_its_topic_as_key():
    message = event_message(NAMES, "user.signed_up", {"id": 1}, message_id="m1")
    props = message.message
    assert (message.exchange, message.routing_key, message.message.body) == (
        "shop",
        "user.signed_up",
        b'{"id":1}',
    )
    assert (props.message_id, props.type, props.delivery_mode, props.content_type) == (
        "m1",
        "user.signed_up",
        2,
        "application/json",
    )
    assert props.correlation_id == "m1" and props.headers is None


def test_a_delayed_event_enters_the_ladder_at_its_top_level():
    message = event_message(NAMES, "user.inactive", None, message_id="m2", seconds=5)
    headers = message.message.headers
    assert message.exchange == NAMES.level(2)  # 5 s = 101b: its highest set bit
    assert message.routing_key == delay.event_key(5, "user.inactive")
    assert (headers[envelope.TOPIC], headers[envelope.DELAY_MS]) == ("user.inactive", 5000)


def test_an_event_published_by_a_handler_carries_its_causes_ids():
    cause = envelope.Event("user.signed_up", {}, id="cause", correlation_id="conversation")
    token = envelope.current_event.set(cause)
    try:
        message = event_message(NAMES, "email.sent", {}, message_id="m3", headers={"a": "b"})
    finally:
        envelope.current_event.reset(token)
    assert message.message.correlation_id == "conversation"
    assert message.message.headers == {"a": "b", envelope.CAUSATION: "cause"}


def test_an_invalid_topic_is_refused_before_anything_is_sent():
    with pytest.raises(ConfigurationError):
        event_message(NAMES, "user..signed_up", {}, message_id="m4")


def test_delay_seconds():
    assert delay_seconds(None, None) is None
    assert delay_seconds("90s", None) == 90
    assert delay_seconds(1.2, None) == 2  # whole seconds, rounded up
    with pytest.raises(ConfigurationError, match="not both"):
        delay_seconds(1, object())  # type: ignore[arg-type]
    with pytest.raises(DelayTooLongError):
        delay_seconds(2**28, None)


def test_amqp_properties_keep_every_set_field_under_py_amqps_names():
    message = event_message(NAMES, "user.signed_up", {}, message_id="m5", headers={"k": 1})
    fields = amqp_properties(message.message)
    assert fields["application_headers"] == {"k": 1}
    assert "headers" not in fields and None not in fields.values()
    assert {
        k: fields[k] for k in ("message_id", "type", "delivery_mode", "content_type", "app_id")
    } == {
        "message_id": "m5",
        "type": "user.signed_up",
        "delivery_mode": 2,
        "content_type": "application/json",
        "app_id": envelope.APP_ID,
    }
    amqp.Message(b"{}", **fields)._serialize_properties()  # py-amqp can encode all of them


def test_confirms_are_required():
    with pytest.raises(ConfigurationError, match="confirm_publish"):
        require_confirms(kombu.Connection(URL))
    with pytest.raises(ConfigurationError, match="py-amqp"):
        require_confirms(kombu.Connection("memory://", transport_options={"confirm_publish": True}))
    require_confirms(kombu.Connection(URL, transport_options={"confirm_publish": True}))


def test_a_pool_without_confirms_is_refused():
    with pytest.raises(ConfigurationError, match="broker_transport_options"):
        KombuPublisher("shop", kombu.Connection(URL).Pool(limit=1))


def test_refusals_say_what_to_do():
    class NotFound(Exception):
        reply_code = 404

    assert "hubbub topology apply" in refusal("shop", NotFound())
