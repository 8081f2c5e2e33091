"""Several topics per event, without a broker: the message, decoding, copies, mistakes."""

from __future__ import annotations

import pytest

from hubbub import envelope
from hubbub.errors import ConfigurationError
from hubbub.message import Message
from hubbub.producers.message import event_message, split_topics
from hubbub.testing import InMemoryHub
from hubbub.topology import delay
from hubbub.topology.names import HubNames

NAMES = HubNames("events")


def test_the_first_topic_routes_and_the_others_ride_in_cc():
    out = event_message(NAMES, ["user.signed_up", "crm.lead", "user.signed_up"], {}, message_id="1")
    assert (out.exchange, out.routing_key) == ("events", "user.signed_up")
    assert out.message.headers == {
        "CC": ["crm.lead"],
        envelope.TOPICS: "user.signed_up crm.lead",
    }
    assert out.message.type == "user.signed_up"


def test_one_topic_in_a_list_is_a_plain_event():
    out = event_message(NAMES, ["user.signed_up"], {}, message_id="1")
    assert out.routing_key == "user.signed_up" and out.message.headers is None


def test_a_delayed_event_lists_ladder_keys_in_cc():
    out = event_message(NAMES, ["user.x", "crm.y"], {}, message_id="1", seconds=5)
    assert out.routing_key == delay.event_key(5, "user.x")
    assert out.message.headers["CC"] == [delay.event_key(5, "crm.y")]


@pytest.mark.parametrize(
    ("topics", "says"),
    [
        ([], "give at least one topic"),
        ({"a", "b"}, "a string or a list of strings, not set"),
        (["a", 3], "a topic is a string, not int (3)"),
        (b"a.b", "a string or a list of strings, not bytes"),
    ],
)
def test_topics_that_cannot_be_published_say_why(topics, says):
    with pytest.raises(ConfigurationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        split_topics(topics)


def test_an_event_has_at_most_a_hundred_topics():
    """Its CC and hubbub-topics headers must fit in one frame: 10,000 topics made the
    broker close the connection (FRAME_ERROR) instead of a clear error."""
    hub = InMemoryHub("events")
    hub.subscriber("all", topics=["#"])(lambda event: None)
    hub.publish([f"bulk.t{n}" for n in range(100)], {})
    with pytest.raises(ConfigurationError, match="an event has at most 100 topics, this one 101"):
        hub.publish([f"bulk.t{n}" for n in range(101)], {})


def test_a_hubbub_topics_header_from_elsewhere_cannot_hide_the_routing_topic():
    hub = InMemoryHub("events")
    hub.subscriber("ab", topics=["a.b"])(lambda event: None)
    hub.publish("a.b", {}, headers={"hubbub-topics": ["x.y"]})
    hub.run_until_idle()
    (event,) = hub.handled("ab")
    assert (event.topics, event.matched) == (("a.b",), ("a.b",))


def test_every_topic_is_checked():
    with pytest.raises(ConfigurationError, match="wildcard"):
        event_message(NAMES, ["user.x", "crm.*"], {}, message_id="1")


def test_decoding_reads_cc_as_topics_whoever_published():
    message = Message(b"{}", headers={"CC": [b"crm.lead", "crm.source.ads"]})
    event = envelope.decode("user.x", message, subscribed=("crm.#",))
    assert event.topics == ("user.x", "crm.lead", "crm.source.ads")
    assert event.matched == ("crm.lead", "crm.source.ads")
    assert event.headers == {}


def test_decoding_reads_cc_of_a_delayed_event_as_topics():
    key = delay.event_key(5, "crm.lead")
    message = Message(b"{}", headers={envelope.TOPIC: "user.x", "CC": [key.encode()]})
    event = envelope.decode(delay.event_key(5, "user.x"), message, subscribed=("crm.*",))
    assert (event.topics, event.matched) == (("user.x", "crm.lead"), ("crm.lead",))


def test_an_event_built_by_hand_has_its_one_topic():
    event = envelope.Event(topic="user.x", data={}, id="1")
    assert event.topics == event.matched == ("user.x",)


def test_a_copy_aimed_at_one_queue_drops_cc_and_keeps_the_topics():
    headers = {"CC": ["crm.lead"], "BCC": ["x"], "x-death": [{}], "tenant": "t"}
    copy = envelope.aimed_copy_headers(headers, ("user.x", "crm.lead"))
    assert copy == {"tenant": "t", envelope.TOPICS: "user.x crm.lead"}


def test_bcc_routes_but_is_never_delivered():
    hub = InMemoryHub("events")
    hub.subscriber("crm", topics=["crm.*"])(lambda event: None)
    hub.publish("user.x", {}, headers={"BCC": ["crm.lead"]})
    hub.run_until_idle()
    (event,) = hub.handled("crm")
    assert event.topics == ("user.x",) and "BCC" not in event.headers


def test_a_hub_warns_only_when_no_topic_of_the_event_matches(caplog):
    hub = InMemoryHub("events")
    hub.subscriber("crm", topics=["crm.*"])(lambda event: None)
    hub.publish(["user.x", "crm.lead"], {})
    assert "no subscriber" not in caplog.text
    hub.publish(["user.y", "billing.z"], {})
    assert "no subscriber of hub 'events' matches ('user.y', 'billing.z')" in caplog.text


def test_published_finds_an_event_by_any_of_its_topics():
    hub = InMemoryHub("events")
    hub.subscriber("crm", topics=["crm.*"])(lambda event: None)
    event_id = hub.publish(["user.x", "crm.lead"], {})
    assert [e.id for e in hub.published("crm.*")] == [e.id for e in hub.published("user.x")]
    assert [e.id for e in hub.published("user.x")] == [event_id]
    assert hub.published("billing.#") == []


def test_a_topic_filter_finds_a_parked_event_by_any_of_its_topics():
    """``dlq show marketing --topic 'marketing.*'`` (replay, the console) finds an event
    that reached marketing through its second topic."""
    from hubbub.admin import select
    from hubbub.admin.records import FailedEvent

    parked = FailedEvent(
        id="e1",
        topic="user.signed_up",
        subscriber="marketing",
        attempts=1,
        reason="not retryable",
        dead_lettered_by="hubbub",
        headers={envelope.TOPICS: ["user.signed_up", "marketing.lead"]},
    )
    assert parked.topics == ("user.signed_up", "marketing.lead")
    assert select(topic="marketing.*").matches(parked)
    assert not select(topic="billing.#").matches(parked)


@pytest.mark.asyncio
async def test_apublish_sends_one_event_under_several_topics():
    """``apublish`` builds its message where ``publish`` does: one event, each
    subscriber one copy, every topic."""
    hub = InMemoryHub("events")
    hub.subscriber("both", topics=["user.*", "crm.#"])(lambda event: None)
    hub.subscriber("crm", topics=["crm.lead"])(lambda event: None)
    event_id = await hub.apublish(["user.signed_up", "crm.lead"], {"n": 1})
    await hub.arun_until_idle()
    (both,) = hub.handled("both")
    (crm,) = hub.handled("crm")
    assert both.id == crm.id == event_id
    assert both.topics == crm.topics == ("user.signed_up", "crm.lead")
    assert crm.matched == ("crm.lead",)
