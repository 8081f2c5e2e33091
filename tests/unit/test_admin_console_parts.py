"""Admin API parts the console added: text and time-window filters, queue rates (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hubbub.admin import rates, select
from hubbub.admin.records import FailedEvent
from hubbub.errors import ConfigurationError
from hubbub.topology.names import HubNames

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def event(**over) -> FailedEvent:
    fields = {
        "id": "e1",
        "topic": "order.created",
        "subscriber": "billing",
        "attempts": 3,
        "reason": "attempts exhausted",
        "dead_lettered_by": "hubbub",
        "exception": "app.errors.Declined",
        "message": "card refused",
        "last_failed": NOW - timedelta(minutes=30),
        "body": b'{"email":"Alice@Example.com"}',
    }
    return FailedEvent(**{**fields, **over})


@pytest.mark.parametrize(
    ("text", "hit"),
    [("REFUSED", True), ("declined", True), ("alice@example", True), ("order.cre", True),
     ("bob", False)],
)  # fmt: skip
def test_text_searches_exception_message_topic_and_data_ignoring_case(text, hit):
    assert select(text=text).matches(event()) is hit


def test_until_and_since_make_a_window_and_a_blank_text_is_no_criterion():
    window = select(since="1h", until="10m", now=NOW)
    assert window.matches(event())
    assert not window.matches(event(last_failed=NOW - timedelta(minutes=5)))
    assert not window.matches(event(last_failed=NOW - timedelta(hours=2)))
    assert not window.matches(event(last_failed=None))
    assert select(text="  ").everything
    assert "failed before" in window.describe() and "containing 'x'" in select(text="x").describe()


def test_every_bad_criterion_is_reported_at_once():
    with pytest.raises(ConfigurationError) as caught:
        select(since="yesterday", until="soon", topic="a..b")
    text = str(caught.value)
    assert "--since" in text and "--until" in text and "--topic" in text


def test_rates_read_the_hubs_queues_and_a_queue_without_traffic_reads_zero():
    names = HubNames("shop")
    rows = [
        {
            "name": "shop.billing",
            "message_stats": {
                "publish_details": {"rate": 12.5},
                "deliver_get_details": {"rate": 3},
            },
        },
        {"name": "shop.billing.dlq"},
        {"name": "other.queue", "message_stats": {"publish_details": {"rate": 9.0}}},
        {"name": "shop.audit", "message_stats": {"publish_details": {"rate": True}}},
    ]
    found = rates.parse(rows, names)
    assert found == {
        "shop.billing": rates.QueueRates(12.5, 3.0),
        "shop.billing.dlq": rates.QueueRates(0.0, 0.0),
        "shop.audit": rates.QueueRates(0.0, 0.0),
    }
