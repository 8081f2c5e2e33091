"""Retries through the delay ladder and the dead-letter record (issue 3).

Backoffs are 1-2 s without jitter. Runtime about 10 s.
"""

from __future__ import annotations

import time

import orjson
import pytest
from ladder_support import Arrivals, depth, ladder_depth, subscribers, take, wait_until

from hubbub import Retry, envelope
from hubbub.consumers import failure
from hubbub.consumers.retry import EXHAUSTED, NOT_RETRYABLE
from hubbub.producers import Publisher

pytestmark = pytest.mark.integration

FAST = {"backoff": "1s", "max_backoff": "2s", "jitter": False}


def failing(arrivals: Arrivals, times: int, error=lambda: ValueError("still broken")):
    """A handler that records each attempt and raises for the first ``times`` of them."""

    def handler(event):
        arrivals(event)
        if event.attempt <= times:
            raise error()

    return handler


def test_a_retry_reaches_only_the_failing_subscriber(declare, run_worker, hub_name, broker_url):
    topology = declare(
        subscribers(
            hub_name,
            flaky={"topics": ["user.signed_up"], "retry": {**FAST, "attempts": 3}},
            steady={"topics": ["user.signed_up"]},
            audit={"topics": ["#"]},
        )
    )
    arrivals = Arrivals()
    run_worker(topology, {"flaky": failing(arrivals, times=1)}, subscribers=["flaky"])
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("user.signed_up", {"user": 1})
    got = arrivals.wait_for(2, timeout=1 + 3)
    assert [(e.id, e.attempt) for _, e in got] == [(event_id, 1), (event_id, 2)]
    # The retry copy was routed the instant it left the ladder: anyone else
    # it reached would now hold a second message.
    names = topology.names
    assert depth(broker_url, names.queue("steady")) == 1
    assert depth(broker_url, names.queue("audit")) == 1
    assert depth(broker_url, names.unrouted) == 0


def test_attempts_stop_at_the_limit_and_the_dead_letter_record_is_complete(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(
        subscribers(hub_name, mailer={"topics": ["user.*"], "retry": {**FAST, "attempts": 3}})
    )
    arrivals = Arrivals()
    run_worker(topology, {"mailer": failing(arrivals, times=99)})
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("user.signed_up", {"user": 2}, headers={"tenant": "acme"})
    dlq = topology.names.dead_letter_queue("mailer")
    wait_until(lambda: depth(broker_url, dlq) == 1, 1 + 2 + 3, "the event is dead-lettered")

    times = [arrived for arrived, _ in arrivals.items]
    assert [e.attempt for e in arrivals.events] == [1, 2, 3]
    assert times[1] - times[0] >= 1.0 and times[2] - times[1] >= 2.0  # 1 s, then doubled
    queue = topology.names.queue("mailer")
    assert depth(broker_url, queue) + ladder_depth(broker_url, hub_name) == 0, "no 4th attempt"

    props, body = take(broker_url, dlq)
    record = props.headers
    assert (props.message_id, orjson.loads(body)) == (event_id, {"user": 2})
    assert record[envelope.ATTEMPT] == 3
    assert record[failure.REASON] == EXHAUSTED
    assert record[failure.EXCEPTION] == "ValueError"
    assert record[failure.MESSAGE] == "still broken"
    assert "ValueError: still broken" in record[failure.TRACEBACK]
    first, last = record[failure.FIRST_TIME], record[failure.LAST_TIME]
    assert abs(first / 1000 - times[0]) < 0.5 and abs(last / 1000 - times[2]) < 0.5
    assert (record[failure.SUBSCRIBER], record[failure.QUEUE]) == ("mailer", queue)
    assert (record[failure.EXCHANGE], record[failure.ROUTING_KEY]) == (hub_name, "user.signed_up")
    assert record[envelope.TOPIC] == "user.signed_up"
    assert record["tenant"] == "acme"
    # x-delivery-count is added by the DLQ (a quorum queue) as it hands the message out.
    assert not [k for k in record if k.startswith(("x-death", "x-first-death", "x-last-death"))]


def test_dont_retry_types_are_dead_lettered_at_once(declare, run_worker, hub_name, broker_url):
    retry = {**FAST, "attempts": 5, "dont_retry": ["KeyError"]}
    topology = declare(subscribers(hub_name, mailer={"topics": ["user.*"], "retry": retry}))
    arrivals = Arrivals()
    run_worker(topology, {"mailer": failing(arrivals, 99, error=lambda: KeyError("email"))})
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("user.signed_up", {"user": 3})
    dlq = topology.names.dead_letter_queue("mailer")
    wait_until(lambda: depth(broker_url, dlq) == 1, 3, "the event is dead-lettered")
    assert [e.attempt for e in arrivals.events] == [1]
    assert ladder_depth(broker_url, hub_name) == 0
    props, _ = take(broker_url, dlq)
    assert (props.headers[failure.REASON], props.headers[envelope.ATTEMPT]) == (NOT_RETRYABLE, 1)


def test_a_handler_can_ask_for_a_retry_of_a_delayed_event(
    declare, run_worker, hub_name, broker_url
):
    retry = {"attempts": 3, "backoff": "1h", "jitter": False}  # Retry(after=) must win
    topology = declare(subscribers(hub_name, mailer={"topics": ["user.*"], "retry": retry}))
    arrivals = Arrivals()
    run_worker(topology, {"mailer": failing(arrivals, 1, error=lambda: Retry("busy", after=1))})
    with Publisher(hub_name, url=broker_url) as publisher:
        sent = time.time()
        event_id = publisher.publish("user.idle", {"user": 4}, headers={"k": "v"}, delay=1)
    (first_at, _), (second_at, second) = arrivals.wait_for(2, timeout=2 + 3)
    assert first_at >= sent + 1 and second_at - first_at >= 1.0
    assert (second.id, second.topic, second.data, second.headers) == (
        event_id,
        "user.idle",
        {"user": 4},
        {"k": "v"},
    )
    assert (second.attempt, second.delay) == (2, 1)
    assert depth(broker_url, topology.names.dead_letter_queue("mailer")) == 0
