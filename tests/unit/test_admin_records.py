"""Failed-event records, filters and replay headers (pure, no broker)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from hubbub import envelope
from hubbub.admin import history, records
from hubbub.admin.filters import exception_matches, parse_since, select
from hubbub.admin.replay import parse_rate
from hubbub.admin.sources import ToHub, subscribers_in
from hubbub.consumers import failure
from hubbub.errors import ConfigurationError
from hubbub.message import Message
from hubbub.topology import delay
from hubbub.topology.names import HubNames

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)


def hubbub_failure(**over) -> Message:
    try:
        raise ValueError("bad email")
    except ValueError as exc:
        error = exc
    headers = failure.record(
        {"tenant": "acme"},
        error,
        reason="attempts exhausted",
        topic="user.signed_up",
        attempt=5,
        subscriber="welcome",
        queue="events.welcome",
        exchange="events",
        routing_key="user.signed_up",
        now_ms=NOW_MS,
    )
    headers.update(over)
    return envelope.message("user.signed_up", b"{}", message_id="e1", headers=headers)


def test_a_hubbub_dead_letter_reads_back_as_its_failure_record():
    event = records.parse("welcome", hubbub_failure(), subscriber="welcome", position=4)
    assert (event.id, event.topic, event.subscriber, event.attempts, event.position) == (
        "e1",
        "user.signed_up",
        "welcome",
        5,
        4,
    )
    assert (event.reason, event.dead_lettered_by, event.exception, event.message) == (
        "attempts exhausted",
        "hubbub",
        "ValueError",
        "bad email",
    )
    assert event.last_failed == NOW and event.first_failed == NOW and event.when == NOW
    assert 'raise ValueError("bad email")' in event.traceback
    data = event.to_json(with_traceback=False)
    assert data["last_failed"] == "2024-05-01T12:00:00.000+00:00" and "traceback" not in data
    json.dumps(event.to_json())


def test_a_broker_dead_letter_says_so_and_takes_its_time_and_topic_from_x_death():
    died = NOW + timedelta(minutes=5)
    props = Message(
        b"{}",
        message_id="p1",
        type="job.poison",
        headers={
            "x-death": [
                {
                    "count": 1,
                    "reason": "delivery_limit",
                    "queue": "events.fragile",
                    "time": died,
                    "exchange": "events",
                    "routing-keys": ["job.poison"],
                }
            ],
            "x-first-death-reason": "delivery_limit",
            "x-delivery-count": 7,
        },
    )
    event = records.parse("fragile", props, subscriber="fragile")
    assert (event.reason, event.dead_lettered_by, event.exception) == (
        "delivery_limit",
        "broker",
        None,
    )
    assert event.topic == "job.poison" and event.last_failed == died
    assert event.attempts == 1  # x-delivery-count restarts in the DLQ: not an attempt count
    assert "delivery limit" in event.message


def test_a_poison_retry_copy_keeps_its_earlier_failure_as_a_note_not_as_its_exception():
    props = hubbub_failure(**{"x-death": [{"reason": "delivery_limit", "queue": "q"}]})
    props.headers[failure.REASON] = "retrying"
    event = records.parse("welcome", props, subscriber="welcome")
    assert event.dead_lettered_by == "broker" and event.exception is None
    assert "an earlier attempt raised ValueError" in event.message
    assert event.first_failed == NOW


def test_the_topic_comes_from_the_header_else_the_ladder_key_else_the_type():
    key = delay.event_key(30, "user.deleted")
    assert records.topic_of(key, Message(b""), {}) == "user.deleted"
    assert records.topic_of("x", Message(b""), {envelope.TOPIC: "a.b"}) == "a.b"
    assert records.topic_of("events.q", Message(b"", type="c.d"), {}) == "c.d"
    assert records.topic_of("plain.key", Message(b""), {}) == "plain.key"


def test_an_unrouted_event_has_no_subscriber_and_dates_from_its_publication():
    props = Message(b"{}", message_id="u1", timestamp=int(NOW.timestamp()))
    event = records.parse("order.created", props, subscriber=None)
    assert (event.reason, event.subscriber, event.dead_lettered_by, event.when) == (
        "unrouted",
        None,
        "none",
        NOW,
    )


def test_a_message_without_id_gets_a_stable_one_that_ignores_changing_headers():
    first = Message(b"{}", timestamp=1, headers={"x-delivery-count": 1})
    again = Message(b"{}", timestamp=1, headers={"x-delivery-count": 2})
    assert records.event_id(first) == records.event_id(again)
    assert records.event_id(first).startswith("sha-")
    assert records.event_id(first) != records.event_id(replace(first, body=b"[]"))


def test_filters_combine_with_and_and_ids_with_or():
    event = records.parse("welcome", hubbub_failure(), subscriber="welcome")
    assert select().matches(event) and select().everything
    assert select(ids=["x", "e1"]).matches(event) and not select(ids=["x"]).matches(event)
    assert select(topic="user.*", exception="ValueError").matches(event)
    assert not select(topic="user.*", exception="KeyError").matches(event)
    assert select(topic="#").matches(event) and not select(topic="user").matches(event)
    assert select(since="1h", now=NOW + timedelta(minutes=30)).matches(event)
    assert not select(since="1h", now=NOW + timedelta(hours=2)).matches(event)
    assert select(since="2024-05-01T11:00").matches(event)
    described = select(topic="user.*", exception="KeyError").describe()
    assert described == "exception KeyError and topic user.*"


def test_exceptions_match_by_full_or_short_name_only():
    assert exception_matches("app.errors.Declined", "Declined")
    assert exception_matches("app.errors.Declined", "app.errors.Declined")
    assert not exception_matches("app.errors.Declined", "errors")
    assert not exception_matches("app.errors.NotDeclined", "Declined")
    assert not exception_matches(None, "Declined")


def test_every_bad_criterion_is_reported_at_once():
    with pytest.raises(ConfigurationError) as caught:
        select(exception="no way", topic="user.*x", since="last week")
    text = str(caught.value)
    assert "--exception" in text and "--topic" in text and "--since" in text
    assert "\n" not in text


def test_since_takes_durations_and_iso_dates():
    assert parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2024-04-30", NOW) == datetime(2024, 4, 30, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("soon", NOW)


def test_a_replayed_copy_starts_over_but_keeps_its_history_and_origin():
    props = hubbub_failure(**{"x-delivery-count": 3})  # added by each browse
    props.headers[history.HISTORY] = json.dumps([{"exception": "KeyError"}])
    event = records.parse("welcome", props, subscriber="welcome")
    copy = history.replay_message(props, event, now_ms=NOW_MS + 1)
    headers = copy.headers
    assert envelope.ATTEMPT not in headers and headers[envelope.TOPIC] == "user.signed_up"
    assert not any(k.startswith("x-") for k in headers)
    assert failure.EXCEPTION not in headers and failure.REASON not in headers
    assert headers[failure.EXCHANGE] == "events" and headers["tenant"] == "acme"
    entries = json.loads(headers[history.HISTORY])
    assert [e["exception"] for e in entries] == ["KeyError", "ValueError"]
    assert entries[-1]["attempts"] == 5 and entries[-1]["replayed_ms"] == NOW_MS + 1
    assert entries[-1]["last_failed_ms"] == NOW_MS
    assert copy.message_id == "e1" and copy.delivery_mode == envelope.PERSISTENT


def test_the_history_keeps_the_newest_entries_within_its_byte_limit():
    many = [{"n": n, "traceback": "x" * 5000} for n in range(30)]
    entries = json.loads(history.encode(many))
    assert [e["n"] for e in entries][-1] == 29 and len(entries) <= history.MAX_ENTRIES
    assert len(history.encode(many).encode()) <= history.MAX_BYTES
    assert history.decode("not json") == () and history.decode(None) == ()
    assert history.decode(b'[{"a": 1}, 2]') == ({"a": 1},)


def test_rates():
    assert parse_rate("10") == 10 and parse_rate("10/s") == 10
    assert parse_rate("600/m") == 10 and parse_rate("3600/h") == 1
    for bad in ("fast", "0/s", "-1", "5/d", "inf"):
        with pytest.raises(ValueError, match="not a rate"):
            parse_rate(bad)


def test_unrouted_events_go_to_the_hub_only_when_a_pattern_matches_now():
    event = records.parse("order.created", Message(b"{}"), subscriber=None)
    assert ToHub("events", ("order.*",)).route(event) == ("events", "order.created")
    assert ToHub("events", ("user.#",)).route(event) == "no subscriber for order.created"


def test_subscribers_are_found_by_their_queue_and_dead_letter_queue():
    names = HubNames("events")
    queues = [
        "events.a",
        "events.a.dlq",
        "events.b",
        "events.unrouted",
        "events.c.dlq",
        "hubbub.v1.events.delay.L00",
        "other.x",
        "other.x.dlq",
    ]
    assert subscribers_in(names, queues) == ["a"]


def test_a_queue_with_a_delivery_limit_is_not_browsed():
    from hubbub.admin.guard import delivery_limit_problem as problem

    q = "events.a.dlq"
    assert problem(q, version="3.10.8", arguments={}, policy={}) is None
    assert problem(q, version="3.10.8", arguments=None, policy=None) is None
    assert "limit of 5 (from its x-delivery-limit" in problem(
        q, version="3.10.8", arguments={"x-delivery-limit": 5}, policy={}
    )
    assert "policy dlq-limit" in problem(
        q, version="3.13.1", arguments={}, policy={"delivery-limit": 3}, policy_name="dlq-limit"
    )
    # RabbitMQ 4 limits every quorum queue to 20 unless told -1 (unlimited).
    assert "limit of 20 by default" in problem(q, version="4.1.0", arguments={}, policy={})
    assert "without the management API" in problem(q, version="4.0.5", arguments=None, policy=None)
    assert problem(q, version="4.1.0", arguments={}, policy={"delivery-limit": -1}) is None
    assert problem(q, version="4.1.0", arguments={"x-delivery-limit": -1}, policy=None) is None
