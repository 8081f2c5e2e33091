"""Contract: a subscriber with ``delay:`` gets each event that long after it was published.

The others get it at once; the event reaches the delayed handler as if it
had not waited (topic, attempt 1, no broker headers); a retry of it goes
straight to the subscriber's queue and does not wait the delay again.
"""

from __future__ import annotations

#: How late an event may arrive on the real broker (margin for a loaded 2-core CI box).
LATE = 1.5
QUICK = {"attempts": 3, "backoff": "1s", "jitter": False}


def test_a_delayed_subscriber_gets_the_event_its_delay_after_the_others(make_hub):
    hub = make_hub()
    arrived = []

    @hub.subscriber("now", topics=["user.*"])
    def now(event):
        arrived.append(("now", event.data["n"], hub.clock.time()))

    @hub.subscriber("later", topics=["user.active", "user.#"], delay="2s")
    def later(event):
        arrived.append(("later", event.data["n"], hub.clock.time()))

    hub.run_until_idle()  # consumers started: what is timed is the delay alone
    start = hub.clock.time()
    hub.publish("user.active", {"n": 1})
    hub.publish("user.seen", {"n": 2})
    hub.run_until(lambda: len(arrived) == 4, within=2 + LATE)

    assert [(who, n) for who, n, _ in arrived] == [
        ("now", 1),
        ("now", 2),
        ("later", 1),
        ("later", 2),
    ]
    for who, n, at in arrived:
        wait = 0 if who == "now" else 2
        assert wait <= at - start <= wait + LATE, (who, n, at - start)
    for event in hub.handled("later"):
        assert event.topic == ("user.active" if event.data["n"] == 1 else "user.seen")
        assert (event.attempt, event.delay, dict(event.headers)) == (1, None, {})
    assert hub.unrouted() == []


def test_a_retry_of_a_delayed_subscriber_does_not_wait_the_delay_again(make_hub):
    hub = make_hub()
    runs = []

    @hub.subscriber("later", topics=["job.#"], delay="3s", retry=QUICK)
    def later(event):
        runs.append((event.attempt, hub.clock.time()))
        if event.attempt == 1:
            raise RuntimeError("not yet")

    hub.run_until_idle()
    start = hub.clock.time()
    hub.publish("job.run", {"id": 1})
    hub.run_until(lambda: len(hub.handled("later")) == 1, within=3 + 1 + 2 * LATE)

    (first, first_at), (second, second_at) = runs
    assert (first, second) == (1, 2)  # hubbub's count, not the broker's x-death
    assert 3 <= first_at - start <= 3 + LATE
    # the backoff (1 s) alone; waiting the delay again would take 4 s
    assert 1 <= second_at - first_at <= 1 + LATE
    (event,) = hub.handled("later")
    assert (event.topic, event.data) == ("job.run", {"id": 1})


def test_an_event_of_several_topics_reaches_a_delayed_subscriber_once_with_its_topics(make_hub):
    hub = make_hub()
    arrived = []

    @hub.subscriber("sales", topics=["marketing.#", "user.*"], delay="2s")
    def sales(event):
        arrived.append((event.topics, event.matched, hub.clock.time()))

    hub.run_until_idle()
    start = hub.clock.time()
    hub.publish(["user.signed_up", "marketing.lead"], {"user_id": 7})
    hub.run_until(lambda: bool(arrived), within=2 + LATE)
    hub.run_until_idle()

    [(topics, matched, at)] = arrived  # one copy, though both topics match
    assert topics == ("user.signed_up", "marketing.lead")
    assert set(matched) == {"user.signed_up", "marketing.lead"}
    assert 2 <= at - start <= 2 + LATE
