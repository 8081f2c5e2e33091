"""Contract: an event published under several topics (sender-selected distribution).

One message, routed under its first topic and, through the AMQP ``CC``
header, the others: each subscriber that any of them matches gets one copy,
sees every topic and which of them it matched; delays, retries,
dead-letters, replay and unrouted parking keep those semantics.
"""

from __future__ import annotations

import pytest

from hubbub import DontRetry, OutgoingEvent

QUICK = {"attempts": 2, "backoff": "1s", "jitter": False}
#: How late a delayed event may arrive on the real broker (as test_contract_delays).
LATE = 1.5


def test_each_subscriber_gets_one_copy_and_sees_every_topic(make_hub):
    hub = make_hub()
    hub.subscriber("both", topics=["user.*", "marketing.#"])(lambda event: None)
    hub.subscriber("marketing", topics=["marketing.lead"])(lambda event: None)
    hub.subscriber("everything", topics=["#"])(lambda event: None)
    hub.subscriber("billing", topics=["billing.#"])(lambda event: None)

    event_id = hub.publish(["user.signed_up", "marketing.lead"], {"user_id": 7})
    hub.run_until(lambda: len(hub.handled()) == 3, within=3)
    hub.run_until_idle()

    for name, matched in [
        ("both", ("user.signed_up", "marketing.lead")),
        ("marketing", ("marketing.lead",)),
        ("everything", ("user.signed_up", "marketing.lead")),
    ]:
        (event,) = hub.handled(name)  # one copy, however many of its patterns matched
        assert event.id == event_id
        assert event.topic == "user.signed_up"
        assert event.topics == ("user.signed_up", "marketing.lead")
        assert event.matched == matched, name
        assert "CC" not in event.headers
    assert hub.handled("billing") == []
    assert hub.unrouted() == []


def test_a_repeated_topic_counts_once(make_hub):
    hub = make_hub()
    hub.subscriber("one", topics=["a.b"])(lambda event: None)
    hub.publish(["a.b", "a.b"], {})
    hub.run_until(lambda: len(hub.handled("one")) == 1, within=3)
    hub.run_until_idle()
    (event,) = hub.handled("one")
    assert event.topics == ("a.b",)


def test_a_delayed_event_of_several_topics_reaches_each_subscriber_once(make_hub):
    hub = make_hub()
    arrived = {}

    def note(event):
        arrived.setdefault(event.subscriber, []).append((hub.clock.time(), event.matched))

    hub.subscriber("users", topics=["user.#"])(note)
    hub.subscriber("crm", topics=["crm.*", "user.inactive"])(note)
    hub.subscriber("other", topics=["billing.#"])(note)
    hub.run_until_idle()
    start = hub.clock.time()
    hub.publish(["user.inactive", "crm.nudge"], {"user_id": 7}, delay=2)
    hub.run_until(lambda: len(hub.handled()) == 2, within=2 + LATE + 2)
    hub.run_until_idle()

    assert sorted(arrived) == ["crm", "users"]
    (users,) = arrived["users"]
    (crm,) = arrived["crm"]
    assert users[1] == ("user.inactive",)
    assert crm[1] == ("user.inactive", "crm.nudge")
    for at, _ in (users, crm):
        assert 2 <= at - start <= 2 + LATE
    (event,) = hub.handled("crm")
    assert (event.topic, event.topics, event.delay) == (
        "user.inactive",
        ("user.inactive", "crm.nudge"),
        2.0,
    )
    assert hub.unrouted() == []


@pytest.mark.parametrize("delay", [None, 1], ids=["now", "delayed"])
def test_a_retry_goes_to_the_failing_subscriber_alone_and_keeps_the_topics(make_hub, delay):
    """A retry copy must not carry the event's ``CC``: a delayed event's ``CC`` lists
    ladder keys, which would take the copy through the ladder to every subscriber
    its other topics match, a second time."""
    hub = make_hub()
    hub.subscriber("calm", topics=["crm.*"])(lambda event: None)

    @hub.subscriber("flaky", topics=["user.*"], retry=QUICK)
    def flaky(event):
        if event.attempt == 1:
            raise ConnectionError("try again")

    event_id = hub.publish(["user.signed_up", "crm.lead"], {"user_id": 7}, delay=delay)
    hub.run_until(lambda: len(hub.handled("flaky")) == 1, within=7)
    hub.run_until_idle()

    assert [(a.outcome, a.event.attempt) for a in hub.attempts("flaky")] == [
        ("retry", 1),
        ("ack", 2),
    ]
    (retried,) = hub.handled("flaky")
    assert (retried.id, retried.topic, retried.topics, retried.matched) == (
        event_id,
        "user.signed_up",
        ("user.signed_up", "crm.lead"),
        ("user.signed_up",),
    )
    # The retry copy was aimed at flaky's queue: calm got the event once, not again.
    assert [e.id for e in hub.handled("calm")] == [event_id]
    assert hub.dead_lettered() == []


def test_dead_letters_and_replay_keep_the_topics(make_hub):
    hub = make_hub()
    hub.subscriber("calm", topics=["crm.*"])(lambda event: None)
    fixed = []

    @hub.subscriber("picky", topics=["user.*"], retry=QUICK)
    def picky(event):
        if not fixed:
            raise DontRetry("not today")

    event_id = hub.publish(["user.signed_up", "crm.lead"], {"user_id": 7})
    hub.run_until(lambda: len(hub.dead_lettered("picky")) == 1, within=5)
    (dead,) = hub.dead_lettered("picky")
    assert dead.event.topics == ("user.signed_up", "crm.lead")

    fixed.append(True)
    assert hub.replay("picky") == 1
    hub.run_until(lambda: len(hub.handled("picky")) == 1, within=5)
    hub.run_until_idle()
    (replayed,) = hub.handled("picky")
    assert (replayed.id, replayed.topics) == (event_id, ("user.signed_up", "crm.lead"))
    assert [e.id for e in hub.handled("calm")] == [event_id]  # never replayed to it
    assert hub.dead_lettered() == []


def test_an_event_none_of_whose_topics_match_is_parked_once(make_hub):
    hub = make_hub()
    hub.subscriber("billing", topics=["billing.#"])(lambda event: None)
    event_id = hub.publish(["user.signed_up", "marketing.lead"], {"user_id": 7})
    hub.run_until_idle()
    (parked,) = hub.unrouted()
    assert (parked.id, parked.topics) == (event_id, ("user.signed_up", "marketing.lead"))
    assert hub.handled() == []


def test_publish_many_and_handlers_publish_several_topics(make_hub):
    hub = make_hub()

    @hub.subscriber("signups", topics=["user.signed_up"])
    def signups(event):
        hub.publish(["email.queued", "audit.email"], {"to": event.data["email"]})

    hub.subscriber("audit", topics=["audit.#"])(lambda event: None)
    hub.subscriber("mailer", topics=["email.*"])(lambda event: None)
    ids = hub.publish_many(
        [OutgoingEvent(["user.signed_up", "audit.signup"], {"email": "a@example.com"})]
    )
    hub.run_until(lambda: len(hub.handled("mailer")) == 1, within=5)
    hub.run_until_idle()

    # The second was published by a handler of the first, so after it.
    assert [e.topics for e in hub.handled("audit")] == [
        ("user.signed_up", "audit.signup"),
        ("email.queued", "audit.email"),
    ]
    (mail,) = hub.handled("mailer")
    assert mail.causation_id == ids[0]
    assert mail.matched == ("email.queued",)
