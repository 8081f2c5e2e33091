"""What a topology declares on the broker (pure): the hub's exchanges, queues and bindings."""

from __future__ import annotations

from hubbub.topology import delay
from hubbub.topology.layout import Binding, layout
from hubbub.topology.loader import from_mapping

TOPOLOGY = from_mapping(
    {
        "hub": "events",
        "subscribers": {
            "welcome": {"handler": "m:f", "topics": ["user.signed_up"]},
            "sales": {
                "handler": "m:g",
                "topics": ["user.first_action.*", "billing.#"],
                "delivery_limit": 3,
            },
        },
    }
)
PLAN = layout(TOPOLOGY)
EXCHANGES = {e.name: e for e in PLAN.exchanges}
QUEUES = {q.name: q for q in PLAN.queues}


def test_the_hub_is_a_topic_exchange_parking_unrouted_events():
    hub = EXCHANGES["events"]
    assert hub.type == "topic"
    assert hub.args == {"alternate-exchange": "events.unrouted"}
    assert EXCHANGES["events.unrouted"].type == "fanout"
    # parking queues: a delivery limit no reading can exhaust (RabbitMQ 4 defaults to 20)
    assert QUEUES["events.unrouted"].args == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 2**31 - 1,
    }
    assert Binding("events.unrouted", "events.unrouted", "") in PLAN.bindings


def test_every_exchange_an_event_can_miss_in_has_the_alternate_exchange():
    for name, exchange in EXCHANGES.items():
        if name != "events.unrouted":
            assert exchange.args.get("alternate-exchange") == "events.unrouted", name


def test_each_subscriber_owns_a_quorum_queue_dead_lettering_to_its_own_dlq():
    sales = QUEUES["events.sales"].args
    assert sales == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "events.dlx",
        "x-dead-letter-routing-key": "sales",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": 3,
    }
    assert QUEUES["events.welcome"].args["x-delivery-limit"] == 20
    assert QUEUES["events.welcome"].args["x-dead-letter-routing-key"] == "welcome"
    assert QUEUES["events.sales.dlq"].args == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 2**31 - 1,
    }
    assert EXCHANGES["events.dlx"].type == "direct"
    assert Binding("events.dlx", "events.sales.dlq", "sales") in PLAN.bindings
    assert Binding("events.dlx", "events.welcome.dlq", "welcome") in PLAN.bindings


def test_one_hub_binding_per_pattern():
    from_hub = sorted((b.destination, b.routing_key) for b in PLAN.bindings if b.source == "events")
    assert from_hub == [
        ("events.sales", "billing.#"),
        ("events.sales", "user.first_action.*"),
        ("events.welcome", "user.signed_up"),
    ]


def test_delayed_events_and_retries_reach_each_subscriber_from_the_delivery_exchange():
    delivery = TOPOLOGY.names.delivery
    to_sales = {
        b.routing_key
        for b in PLAN.bindings
        if b.source == delivery and b.destination == "events.sales"
    }
    assert to_sales == {
        delay.delivery_event_pattern("user.first_action.*"),
        delay.delivery_event_pattern("billing.#"),
        delay.delivery_queue_pattern("sales"),
    }


def test_every_queue_is_quorum_and_every_binding_joins_declared_objects():
    assert all(q.args["x-queue-type"] == "quorum" for q in PLAN.queues)
    assert len(PLAN.queues) == len(QUEUES)  # no name declared twice
    for b in PLAN.bindings:
        assert b.source in EXCHANGES
        assert b.destination in (EXCHANGES if b.destination_type == "exchange" else QUEUES)


def test_layout_is_deterministic():
    assert layout(TOPOLOGY) == PLAN
    assert len(set(PLAN.bindings)) == len(PLAN.bindings)
