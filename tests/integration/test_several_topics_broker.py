"""Several topics per event on the real broker: the CLI's ``--also``, and ``CC`` sent by
another AMQP client (a plain pika publish, as a service in any language would send it)."""

from __future__ import annotations

import orjson
import pika
import pytest
from core_support import channel, hubbub, take_all

from hubbub import envelope
from hubbub.testing import LiveHub

pytestmark = pytest.mark.integration


def test_cli_publishes_one_event_under_several_topics(declare, hub_name, broker_url):
    declare(
        {
            "hub": hub_name,
            "subscribers": {
                "both": {"handler": "m:f", "topics": ["user.*", "crm.#"]},
                "crm": {"handler": "m:f", "topics": ["crm.lead"]},
            },
        }
    )
    done = hubbub(
        "publish", "--hub", hub_name, "user.signed_up", '{"n": 1}', "--also", "crm.lead",
        url=broker_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("published user.signed_up, crm.lead ")

    (one,) = take_all(broker_url, f"{hub_name}.both")  # one copy, though both patterns match
    (two,) = take_all(broker_url, f"{hub_name}.crm")
    for method, props, body in (one, two):
        assert method.routing_key == "user.signed_up"
        assert orjson.loads(body) == {"n": 1}
        assert props.headers[envelope.CC] == ["crm.lead"]
        assert props.headers[envelope.TOPICS] == "user.signed_up crm.lead"


def test_cc_from_another_client_is_honoured(hub_name, hubbub_vhost_url):
    hub = LiveHub(hub_name, url=hubbub_vhost_url)
    hub.subscriber("users", topics=["user.*"])(lambda event: None)
    hub.subscriber("crm", topics=["crm.#"])(lambda event: None)
    try:
        hub.run_until_idle()
        with channel(hubbub_vhost_url) as ch:
            ch.confirm_delivery()
            ch.basic_publish(
                hub_name,
                "user.signed_up",
                b'{"user_id": 7}',
                pika.BasicProperties(
                    content_type="application/json",
                    message_id="from-go-1",
                    headers={"CC": ["crm.lead", "crm.source.ads"]},
                    delivery_mode=2,
                ),
            )
        hub.run_until(lambda: len(hub.handled()) == 2, within=5)
        hub.run_until_idle()
        (users,) = hub.handled("users")
        (crm,) = hub.handled("crm")
        everything = ("user.signed_up", "crm.lead", "crm.source.ads")
        assert users.topics == crm.topics == everything
        assert users.matched == ("user.signed_up",)
        assert crm.matched == ("crm.lead", "crm.source.ads")
        assert users.id == crm.id == "from-go-1"
        assert "CC" not in users.headers
    finally:
        hub.close()
