"""kombu entities built from a topology equal its layout; no broker needed."""

from __future__ import annotations

import kombu
import pytest

from hubbub.topology import delay, loader
from hubbub.topology.kombu import kombu_topology
from hubbub.topology.layout import Binding, layout

TOPOLOGY = loader.from_mapping(
    {
        "hub": "shop",
        "subscribers": {
            "welcome": {"handler": "x:y", "topics": ["user.signed_up"], "delivery_limit": 7},
            "sales": {"handler": "x:y", "topics": ["user.first_action.*", "billing.#"]},
        },
    }
)


@pytest.fixture(scope="module")
def entities():
    return kombu_topology(TOPOLOGY)


def _bindings(entities) -> set[Binding]:
    """Every binding the kombu entities would make, in hubbub's own terms."""
    found = {
        Binding(b.exchange.name, queue.name, b.routing_key)
        for queue in entities.queues
        for b in queue.bindings
    }
    found |= {
        Binding(eb.source.name, eb.destination.name, eb.routing_key, "exchange")
        for eb in entities.exchange_bindings
    }
    return found


def test_same_exchanges_as_the_layout(entities):
    want = layout(TOPOLOGY).exchanges
    assert [(e.name, e.type, e.arguments or {}) for e in entities.exchanges] == [
        (e.name, e.type, e.args) for e in want
    ]
    assert all(e.durable and not e.auto_delete for e in entities.exchanges)
    assert entities.exchanges[1].arguments == {"alternate-exchange": "shop.unrouted"}


def test_same_queues_and_arguments_as_the_layout(entities):
    want = layout(TOPOLOGY).queues
    assert [(q.name, q.queue_arguments) for q in entities.queues] == [
        (q.name, q.args) for q in want
    ]
    assert all(q.durable and not q.auto_delete and not q.exclusive for q in entities.queues)
    welcome = next(q for q in entities.queues if q.name == "shop.welcome")
    assert welcome.queue_arguments["x-queue-type"] == "quorum"
    assert welcome.queue_arguments["x-delivery-limit"] == 7


def test_same_bindings_as_the_layout_including_the_ladders_exchange_bindings(entities):
    want = layout(TOPOLOGY).bindings
    assert _bindings(entities) == set(want)
    assert sum(len(q.bindings) for q in entities.queues) + len(entities.exchange_bindings) == len(
        want
    )
    assert len(entities.exchange_bindings) == delay.LEVELS


def test_bindings_share_the_declared_exchange_objects(entities):
    """A queue's binding redeclares its exchange: it must carry the same arguments."""
    declared = {e.name: e for e in entities.exchanges}
    for queue in entities.queues:
        for b in queue.bindings:
            assert b.exchange.arguments == declared[b.exchange.name].arguments


def test_builds_no_io_objects(entities):
    assert all(not e.is_bound for e in entities.exchanges)
    assert all(isinstance(q, kombu.Queue) and not q.is_bound for q in entities.queues)


def test_accepts_a_layout_as_well(entities):
    again = kombu_topology(layout(TOPOLOGY))
    assert [q.name for q in again.queues] == [q.name for q in entities.queues]
    assert _bindings(again) == _bindings(entities)
