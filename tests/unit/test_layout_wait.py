"""A subscriber's ``delay:`` on the broker (pure): its wait exchange, wait queue and bindings."""

from __future__ import annotations

from hubbub.topology import delay
from hubbub.topology.layout import Binding, layout, wait_seconds
from hubbub.topology.loader import from_mapping

TOPOLOGY = from_mapping(
    {
        "hub": "events",
        "replicas": 3,
        "subscribers": {
            "now": {"handler": "m:f", "topics": ["user.active"]},
            "later": {"handler": "m:g", "topics": ["user.active", "user.seen.*"], "delay": "3d"},
        },
    }
)
LAYOUT = layout(TOPOLOGY)
EXCHANGES = {e.name: e for e in LAYOUT.exchanges}
QUEUES = {q.name: q for q in LAYOUT.queues}
WAIT = "hubbub.v1.events.wait.later.259200s"


def to(destination: str) -> set[tuple[str, str]]:
    return {(b.source, b.routing_key) for b in LAYOUT.bindings if b.destination == destination}


def test_every_subscriber_has_a_fanout_wait_exchange_into_its_queue():
    for sub in ("now", "later"):
        exchange = EXCHANGES[f"hubbub.v1.events.wait.{sub}"]
        assert exchange.type == "fanout"
        # an event a deleted queue leaves unroutable is parked, never stuck or dropped
        assert exchange.args == {"alternate-exchange": "events.unrouted"}
        assert Binding(exchange.name, f"events.{sub}", "") in LAYOUT.bindings


def test_a_delayed_subscriber_has_one_wait_queue_named_after_its_delay():
    waits = [name for name in QUEUES if ".wait." in name]
    assert waits == [WAIT]
    assert QUEUES[WAIT].args == {
        "x-queue-type": "quorum",
        "x-message-ttl": 3 * 86400 * 1000,
        "x-dead-letter-exchange": "hubbub.v1.events.wait.later",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-quorum-initial-group-size": 3,
    }
    # no dead-letter routing key: the event keeps its own (and its CC) through the wait
    assert "x-dead-letter-routing-key" not in QUEUES[WAIT].args


def test_its_topic_bindings_lead_to_the_wait_queue_and_retries_to_its_queue():
    assert to(WAIT) == {
        ("events", "user.active"),
        ("events", "user.seen.*"),
        (TOPOLOGY.names.delivery, delay.delivery_event_pattern("user.active")),
        (TOPOLOGY.names.delivery, delay.delivery_event_pattern("user.seen.*")),
    }
    assert to("events.later") == {
        (TOPOLOGY.names.delivery, delay.delivery_queue_pattern("later")),
        ("hubbub.v1.events.wait.later", ""),
    }


def test_a_subscriber_without_delay_is_bound_as_before():
    assert to("events.now") == {
        ("events", "user.active"),
        (TOPOLOGY.names.delivery, delay.delivery_event_pattern("user.active")),
        (TOPOLOGY.names.delivery, delay.delivery_queue_pattern("now")),
        ("hubbub.v1.events.wait.now", ""),
    }


def test_a_delay_is_rounded_up_to_whole_seconds():
    def waits(value: object) -> tuple[int | None, list[str]]:
        topology = from_mapping(
            {"hub": "h", "subscribers": {"s": {"handler": "m:f", "topics": ["t"], "delay": value}}}
        )
        queues = [q.name for q in layout(topology).queues if ".wait." in q.name]
        return wait_seconds(topology.subscribers[0]), queues

    assert waits(1.2) == (2, ["hubbub.v1.h.wait.s.2s"])
    assert waits("4001ms") == (5, ["hubbub.v1.h.wait.s.5s"])
    assert waits("5s") == (5, ["hubbub.v1.h.wait.s.5s"])


def test_every_binding_joins_declared_objects():
    for b in LAYOUT.bindings:
        assert b.source in EXCHANGES
        assert b.destination in (EXCHANGES if b.destination_type == "exchange" else QUEUES)
    assert layout(TOPOLOGY) == LAYOUT
