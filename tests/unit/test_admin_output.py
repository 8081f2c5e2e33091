"""Pure parts of the admin commands: table rows, refused permissions, what destroy removes."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from hubbub.admin.access import operator, refused
from hubbub.admin.records import FailedEvent
from hubbub.cli import dlq, tables
from hubbub.topology.destroy import teardown
from hubbub.topology.layout import layout
from hubbub.topology.loader import from_mapping
from hubbub.topology.names import HubNames
from hubbub.topology.plan import Observed, ObservedExchange, ObservedQueue

EVENT = FailedEvent(
    id="5f0c" * 8,
    topic="user.signed_up",
    subscriber="billing",
    attempts=3,
    reason="attempts exhausted",
    dead_lettered_by="hubbub",
    exception="ValueError",
    message="bad email",
)


@pytest.mark.parametrize("ago", [timedelta(minutes=45), timedelta(hours=23), timedelta(days=120)])
def test_the_failed_column_shows_the_whole_time_and_age(ago):
    event = replace(EVENT, last_failed=datetime.now(timezone.utc) - ago)
    row = dlq._row(event)
    assert tables.when(event.last_failed) in row
    assert row.index("ValueError") > row.index(tables.when(event.last_failed))


REPLY = (
    "ACCESS_REFUSED - access to queue 'events.billing.dlq' in vhost 'prod' refused for user 'ops'"
)


def test_a_refusal_names_permission_resource_vhost_user_and_the_grant():
    grant = operator(HubNames("events"))
    error = refused(REPLY, permission="read", doing="read queue 'x'", grant=grant)
    assert error is not None
    assert (error.permission, error.kind, error.name, error.vhost, error.user) == (
        "read",
        "queue",
        "events.billing.dlq",
        "prod",
        "ops",
    )
    text = str(error)
    assert "\n" not in text
    assert text.startswith(
        "user 'ops' lacks read permission on queue 'events.billing.dlq' in vhost 'prod'"
    )
    assert grant.command("ops", "prod") in text
    assert refused("NOT_FOUND - no queue 'x'", permission="read", doing="read") is None


def test_the_operator_grant_reads_parking_queues_and_writes_replays_only():
    names = HubNames("events")
    grant = operator(names)
    assert re.fullmatch(grant.read, names.dead_letter_queue("billing"))
    assert re.fullmatch(grant.read, names.unrouted)
    assert not re.fullmatch(grant.read, names.queue("billing"))
    assert not re.fullmatch(grant.read, "events.staging.billing.dlq")
    assert re.fullmatch(grant.write, "amq.default") and re.fullmatch(grant.write, "events")
    assert not re.fullmatch(grant.write, names.dead_letter_exchange)
    assert grant.configure == "^$"


def test_destroy_removes_the_hub_exchange_first_and_refuses_queues_holding_events():
    topology = from_mapping({"hub": "h", "subscribers": {"a": {"handler": "m:f", "topics": ["x"]}}})
    wanted = layout(topology)
    observed = Observed(
        {e.name: ObservedExchange(e.type, e.args) for e in wanted.exchanges},
        {
            q.name: ObservedQueue(q.args, messages=2 if q.name == "h.a" else 0)
            for q in wanted.queues
        },
    )
    target = teardown(topology.names, observed)
    changes = target.changes()
    assert (changes[0].kind, changes[0].name) == ("exchange", "h")
    assert [c.kind for c in changes[1:32]] == ["queue"] * 31
    assert target.holding == (("h.a", 2),) and target.events == 2
    assert "h.a (2 event(s))" in (target.refusal() or "")
    assert "- remove delay ladder: 28 queues, 28 exchanges" in target.describe()
    assert teardown(topology.names, Observed()).empty
