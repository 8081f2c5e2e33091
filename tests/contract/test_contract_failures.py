"""Contract: retries, attempt counts, isolation of failing subscribers, the
dead-letter record, replay."""

from __future__ import annotations

import pytest

from hubbub import Retry

QUICK = {"attempts": 3, "backoff": "1s", "jitter": False}


def test_retries_count_attempts_and_wait_the_backoff(make_hub):
    hub = make_hub()
    runs = []

    @hub.subscriber("flaky", topics=["job.#"], retry=QUICK)
    def flaky(event):
        runs.append((event.topic, event.attempt, hub.clock.time()))
        if event.topic == "job.flaky" and event.attempt < 3:
            raise ConnectionError("try again")
        if event.topic == "job.asks" and event.attempt == 1:
            raise Retry("not yet", after=2)

    flaky_id = hub.publish("job.flaky", {})
    hub.publish("job.asks", {})
    hub.run_until(lambda: len(hub.handled("flaky")) == 2, within=5)

    attempts = hub.attempts("flaky")
    flaky_runs = [a for a in attempts if a.event.topic == "job.flaky"]
    assert [(a.outcome, a.event.attempt, a.error) for a in flaky_runs] == [
        ("retry", 1, "ConnectionError"),
        ("retry", 2, "ConnectionError"),
        ("ack", 3, ""),
    ]
    assert {a.event.id for a in flaky_runs} == {flaky_id}
    assert [a.delay for a in flaky_runs[:2]] == [1.0, 2.0]
    asks = [a for a in attempts if a.event.topic == "job.asks"]
    assert [(a.outcome, a.event.attempt, a.delay) for a in asks] == [
        ("retry", 1, 2.0),
        ("ack", 2, 0.0),
    ]
    times = [t for topic, _, t in runs if topic == "job.flaky"]
    assert times[1] - times[0] >= 1.0 and times[2] - times[1] >= 2.0
    assert hub.dead_lettered() == []


def test_a_failing_subscriber_never_touches_another(make_hub):
    hub = make_hub()
    hub.subscriber("calm", topics=["order.#"])(lambda event: None)

    @hub.subscriber("broken", topics=["order.#"], retry={**QUICK, "attempts": 2})
    def broken(event):
        raise RuntimeError("always")

    ids = [hub.publish(f"order.n{i}", {"i": i}) for i in range(3)]
    hub.run_until(lambda: len(hub.dead_lettered("broken")) == 3, within=4)
    hub.run_until_idle()
    assert [e.id for e in hub.handled("calm")] == ids  # once each: no retry copy reached it
    assert [a.outcome for a in hub.attempts("calm")] == ["ack"] * 3
    assert hub.dead_lettered("calm") == []
    assert sorted(d.event.id for d in hub.dead_lettered("broken")) == sorted(ids)
    assert len(hub.attempts("broken")) == 6


def test_the_dead_letter_record(make_hub):
    hub = make_hub()

    @hub.subscriber(
        "billing",
        topics=["invoice.*"],
        retry={**QUICK, "attempts": 2, "dont_retry": ["LookupError"]},
    )
    def billing(event):
        if event.topic == "invoice.lost":
            raise KeyError("customer 7")
        raise ValueError("bad amount")

    exhausted_id = hub.publish("invoice.paid", {"amount": -1}, headers={"tenant": "acme"})
    not_retryable_id = hub.publish("invoice.lost", {"amount": 5})
    hub.run_until(lambda: len(hub.dead_lettered("billing")) == 2, within=3)

    by_id = {d.event.id: d for d in hub.dead_lettered("billing")}
    exhausted, lost = by_id[exhausted_id], by_id[not_retryable_id]
    assert (exhausted.event.topic, exhausted.event.data, dict(exhausted.event.headers)) == (
        "invoice.paid",
        {"amount": -1},
        {"tenant": "acme"},
    )
    assert (exhausted.reason, exhausted.exception, exhausted.attempts) == (
        "attempts exhausted",
        "ValueError",
        2,
    )
    assert (lost.reason, lost.exception, lost.attempts) == ("not retryable", "KeyError", 1)
    for dead, topic in ((exhausted, "invoice.paid"), (lost, "invoice.lost")):
        record = dead.record
        assert record["subscriber"] == "billing"
        assert record["queue"] == "events.billing"
        assert record["exchange"] == "events"
        assert record["routing-key"] == topic
        assert record["first-time-ms"] <= record["last-time-ms"]
        assert record["host"]
        assert dead.record["exception"] in record["traceback"]
        # The broker's bookkeeping of the trip through the delay ladder is not kept.
        assert not any(
            k.startswith(("x-death", "x-first-death", "x-last-death")) for k in dead.headers
        )
    assert exhausted.record["message"] == "bad amount"
    assert lost.record["message"] == "'customer 7'"


def test_replay_sends_dead_letters_back_to_their_subscriber_alone(make_hub):
    hub = make_hub()
    broken = {"yes": True}
    hub.subscriber("calm", topics=["order.#"])(lambda event: None)

    @hub.subscriber("picky", topics=["order.#"], retry={**QUICK, "dont_retry": ["ValueError"]})
    def picky(event):
        if broken["yes"]:
            raise ValueError("down")

    first = hub.publish("order.placed", {"n": 1})
    second = hub.publish("order.placed", {"n": 2})
    hub.run_until(lambda: len(hub.dead_lettered("picky")) == 2, within=2)

    assert hub.replay("picky", ids=[second]) == 1  # still broken: back in the DLQ
    hub.run_until(lambda: len(hub.attempts("picky")) == 3, within=2)
    again = {d.event.id: d for d in hub.dead_lettered("picky")}[second]
    assert (again.attempts, again.reason, again.event.attempt) == (1, "not retryable", 1)
    assert [h["reason"] for h in again.failure.history] == ["not retryable"]
    assert again.record["exchange"] == "events"  # where it first came from, kept
    assert again.record["routing-key"] == "order.placed"

    broken["yes"] = False
    assert hub.replay("picky", ids=[first]) == 1
    hub.run_until(lambda: len(hub.handled("picky")) == 1, within=2)
    (replayed,) = hub.handled("picky")
    assert (replayed.id, replayed.attempt, replayed.data) == (first, 1, {"n": 1})
    assert [d.event.id for d in hub.dead_lettered("picky")] == [second]

    assert hub.replay("picky") == 1
    hub.run_until(lambda: len(hub.handled("picky")) == 2, within=2)
    hub.run_until_idle()
    assert hub.dead_lettered() == []
    assert [e.id for e in hub.handled("calm")] == [first, second]  # never replayed to it


@pytest.mark.parametrize("attempts", [1])
def test_a_single_attempt_policy_dead_letters_at_once(make_hub, attempts):
    hub = make_hub()

    @hub.subscriber("once", topics=["a.b"], retry={"attempts": attempts})
    def once(event):
        raise OSError("disk full")

    hub.publish("a.b", [1, 2])
    hub.run_until(lambda: len(hub.dead_lettered("once")) == 1, within=2)
    (dead,) = hub.dead_lettered("once")
    assert (dead.reason, dead.attempts, dead.event.data) == ("attempts exhausted", 1, [1, 2])
    assert [a.outcome for a in hub.attempts("once")] == ["dead-letter"]
