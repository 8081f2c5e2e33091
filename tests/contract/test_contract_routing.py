"""Contract: which subscribers get which events, once each; unrouted events are parked."""

from __future__ import annotations

TOPICS = [
    "user",
    "user.signed_up",
    "user.profile.created",
    "user.a.b.created",
    "order.created",
    "created",
    "user.created",
]

#: RabbitMQ's topic semantics written out by hand: '*' is exactly one word,
#: '#' zero or more; a subscriber with several matching patterns gets one copy.
ROUTING_TABLE = {
    "star": (["user.*"], ["user.signed_up", "user.created"]),
    "hash": (
        ["user.#"],
        ["user", "user.signed_up", "user.profile.created", "user.a.b.created", "user.created"],
    ),
    "everything": (["#"], TOPICS),
    "middle": (["user.*.created"], ["user.profile.created"]),
    "suffix": (
        ["#.created"],
        ["user.profile.created", "user.a.b.created", "order.created", "created", "user.created"],
    ),
    "inner-hash": (
        ["user.#.created"],
        ["user.profile.created", "user.a.b.created", "user.created"],
    ),
    "exact": (["created"], ["created"]),
    "overlapping": (
        ["user.*", "user.#", "#.signed_up", "#"],
        TOPICS,
    ),
}


def test_routing_table_of_patterns_and_topics(make_hub):
    hub = make_hub()
    for name, (topics, _) in ROUTING_TABLE.items():
        hub.subscriber(name, topics=topics)(lambda event: None)
    ids = {topic: hub.publish(topic, {"topic": topic}) for topic in TOPICS}
    hub.run_until_idle()
    for name, (_, expected) in ROUTING_TABLE.items():
        got = hub.handled(name)
        assert [e.topic for e in got] == expected, name
        assert [e.id for e in got] == [ids[t] for t in expected], name
        assert all(e.data == {"topic": e.topic} and e.attempt == 1 for e in got)
    assert hub.unrouted() == []


def test_events_no_subscriber_matches_are_parked_not_dropped(make_hub):
    hub = make_hub()
    hub.subscriber("users", topics=["user.#"])(lambda event: None)
    parked_id = hub.publish("billing.invoice.paid", {"amount": 42}, headers={"tenant": "acme"})
    hub.publish("user.signed_up", {"n": 1})
    later_id = hub.publish("nobody.listens", {"n": 2}, delay=1)
    hub.run_until(lambda: len(hub.unrouted()) == 2, within=3)
    parked, later = hub.unrouted()
    assert (parked.id, parked.topic, parked.data, dict(parked.headers)) == (
        parked_id,
        "billing.invoice.paid",
        {"amount": 42},
        {"tenant": "acme"},
    )
    assert (later.id, later.topic, later.data) == (later_id, "nobody.listens", {"n": 2})
    assert [e.topic for e in hub.handled("users")] == ["user.signed_up"]


def test_events_published_by_a_handler_carry_causation_and_correlation(make_hub):
    hub = make_hub()

    @hub.subscriber("welcome", topics=["user.signed_up"])
    def welcome(event):
        hub.publish("email.sent", {"to": event.data["email"]})

    hub.subscriber("audit", topics=["email.#"])(lambda event: None)
    signed_up = hub.publish("user.signed_up", {"email": "a@example.com"})
    hub.run_until_idle()
    (sent,) = hub.handled("audit")
    assert sent.data == {"to": "a@example.com"}
    assert sent.causation_id == signed_up
    assert sent.correlation_id == signed_up
    assert [e.topic for e in hub.published()] == ["user.signed_up", "email.sent"]
    assert [e.id for e in hub.published("email.*")] == [sent.id]
