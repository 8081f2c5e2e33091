"""An event that waited in a subscriber's wait queue, as the consumer decodes and copies it (pure).

The broker dead-letters it out of the wait queue with its own routing key
and adds ``x-death``; the handler must see the event as published, and any
copy hubbub makes of it (retry, dead-letter) must drop the broker's headers
and count attempts in hubbub's own header.
"""

from __future__ import annotations

from hubbub import envelope
from hubbub.consumers import failure
from hubbub.envelope import ATTEMPT, TOPIC, decode, message

WAIT = "hubbub.v1.events.wait.reminder.259200s"
DEATH = {
    "x-death": [
        {
            "count": 1,
            "queue": WAIT,
            "reason": "expired",
            "exchange": "events",
            "routing-keys": ["user.active"],
            "time": 1,
        }
    ],
    "x-first-death-queue": WAIT,
    "x-first-death-reason": "expired",
    "x-first-death-exchange": "events",
}


def waited(**headers):
    published = message("user.active", b'{"user_id": 7}', message_id="e1", headers=headers)
    return published.with_headers({**(published.headers or {}), **DEATH})


def test_a_waited_event_decodes_as_published():
    event = decode("user.active", waited(source="web"), subscriber="reminder")
    assert (event.topic, event.id, event.data, event.attempt) == (
        "user.active",
        "e1",
        {"user_id": 7},
        1,
    )
    assert dict(event.headers) == {"source": "web"}  # the publisher's own, no x-death
    assert event.delay is None


def test_its_retry_copy_drops_the_broker_headers_and_counts_in_hubbubs_own():
    raw = waited().headers
    record = failure.record(
        raw,
        ValueError("mail server down"),
        reason="retrying",
        topic="user.active",
        attempt=1,
        subscriber="reminder",
        queue="events.reminder",
        exchange="hubbub.v1.events.wait.reminder",
        routing_key="user.active",
    )
    assert not [k for k in record if "death" in k]
    assert record[TOPIC] == "user.active" and record[ATTEMPT] == 1
    assert envelope.without_broker_headers(raw) == {}
