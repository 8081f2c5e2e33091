"""Two hubs never claim, nor declare, the same broker object."""

from __future__ import annotations

import pytest

from hubbub.errors import TopologyError
from hubbub.topology.layout import layout
from hubbub.topology.loader import from_mapping
from hubbub.topology.names import HubNames


def _layout(hub: str, subscriber: str):
    spec = {"hub": hub, "subscribers": {subscriber: {"handler": "m:f", "topics": ["t"]}}}
    return layout(from_mapping(spec))


def test_a_hub_claims_its_own_objects_by_kind_and_not_a_neighbours():
    mine, neighbour = _layout("events", "staging"), _layout("events.staging", "s")
    names = HubNames("events")
    for exchange in mine.exchanges:
        assert names.owns(exchange.name, "exchange"), exchange.name
    for queue in mine.queues:
        assert names.owns(queue.name, "queue"), queue.name
    for exchange in neighbour.exchanges:  # events.staging itself among them
        assert not names.owns(exchange.name, "exchange"), exchange.name
    for queue in neighbour.queues:
        assert not names.owns(queue.name, "queue"), queue.name


def test_a_hub_name_ending_in_wait_is_refused():
    """Hub ``events``' subscriber ``delivery`` has the wait exchange
    ``hubbub.v1.events.wait.delivery``: hub ``events.wait``'s delivery exchange."""
    with pytest.raises(TopologyError, match=r"ends with '\.wait'"):
        _layout("events.wait", "s")
    assert _layout("events.waiting", "s")
