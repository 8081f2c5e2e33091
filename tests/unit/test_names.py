"""Every broker name derived from a hub, and which names belong to it."""

from __future__ import annotations

import pytest

from hubbub.topology.layout import layout
from hubbub.topology.loader import from_mapping
from hubbub.topology.names import HubNames


def test_derived_names():
    names = HubNames("events")
    assert names.exchange == "events"
    assert names.unrouted == "events.unrouted"
    assert names.dead_letter_exchange == "events.dlx"
    assert names.queue("welcome-email") == "events.welcome-email"
    assert names.dead_letter_queue("welcome-email") == "events.welcome-email.dlq"
    assert names.delivery == "hubbub.v1.events.delivery"
    assert names.level(7) == "hubbub.v1.events.delay.L07"


def test_a_hub_owns_every_name_its_layout_declares():
    topology = from_mapping(
        {"hub": "events", "subscribers": {"a": {"handler": "m:f", "topics": ["x"]}}}
    )
    plan = layout(topology)
    declared = [e.name for e in plan.exchanges] + [q.name for q in plan.queues]
    assert all(topology.names.owns(name) for name in declared)
    # ...and the queues of a subscriber removed from the file (for 'obsolete').
    assert topology.names.owns("events.gone")
    assert topology.names.owns("events.gone.dlq")


@pytest.mark.parametrize(
    "foreign",
    [
        "events.staging.a",  # hub 'events.staging', subscriber 'a'
        "events.staging.a.dlq",
        "events.staging.unrouted",
        "hubbub.v1.events.staging.delay.L01",
        "hubbub.v1.events.staging.delivery",
        "eventsx",
        "eventsx.a",
        "other",
        "hubbub.v1.events.delay.L7",
        "amq.topic",
    ],
)
def test_a_hub_does_not_own_another_hubs_names(foreign):
    assert not HubNames("events").owns(foreign)


def test_names_of_a_hub_with_regex_characters_are_matched_literally():
    names = HubNames("a.b")
    assert names.owns("a.b.x")
    assert not names.owns("aXb.x")
