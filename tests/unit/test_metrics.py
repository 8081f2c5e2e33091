"""The Prometheus observer counts each outcome where it belongs (no broker)."""

from __future__ import annotations

from hubbub.consumers.handling import Outcome
from hubbub.consumers.metrics import Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_outcomes_durations_in_flight_and_connections_are_counted():
    m = Metrics()
    m.declare(["s"])
    assert value(m, "hubbub_events_in_flight", subscriber="s") == 0
    for action in ("ack", "ack", "retry", "dead-letter", "release"):
        m.started("s")
        m.finished("s", Outcome(action, topic="t.x"), 0.2)  # type: ignore[arg-type]
    m.settled("s")
    labels = {"subscriber": "s", "topic": "t.x"}
    assert value(m, "hubbub_events_handled_total", **labels) == 2
    assert value(m, "hubbub_events_failed_total", **labels) == 3
    assert value(m, "hubbub_events_retried_total", **labels) == 1
    assert value(m, "hubbub_events_dead_lettered_total", **labels) == 1
    assert value(m, "hubbub_events_released_total", **labels) == 1
    assert value(m, "hubbub_handler_duration_seconds_count", subscriber="s") == 5
    assert value(m, "hubbub_handler_duration_seconds_bucket", subscriber="s", le="0.25") == 5
    assert value(m, "hubbub_events_in_flight", subscriber="s") == 4
    m.connected()
    m.disconnected()
    m.connected()
    assert value(m, "hubbub_connections_total") == 2
    assert value(m, "hubbub_connected") == 1
    m.depth("s", 7, 3, None)
    assert value(m, "hubbub_queue_messages", subscriber="s") == 7
    assert value(m, "hubbub_queue_consumers", subscriber="s") == 3
    assert value(m, "hubbub_dead_letter_messages", subscriber="s") is None
    m.depth("s", 0, 3, 2)
    assert value(m, "hubbub_dead_letter_messages", subscriber="s") == 2


def test_two_workers_in_one_process_do_not_share_counters():
    a, b = Metrics(), Metrics()
    a.finished("s", Outcome("ack", topic="t"), 0.1)
    assert value(a, "hubbub_events_handled_total", subscriber="s", topic="t") == 1
    assert value(b, "hubbub_events_handled_total", subscriber="s", topic="t") is None


def test_each_subscriber_and_topic_keeps_its_own_series():
    m = Metrics()
    for subscriber, topic in [("a", "t.1"), ("a", "t.2"), ("b", "t.1"), ("a", "t.1")]:
        m.started(subscriber)
        m.finished(subscriber, Outcome("ack", topic=topic), 0.01)
    m.settled("b")
    assert value(m, "hubbub_events_handled_total", subscriber="a", topic="t.1") == 2
    assert value(m, "hubbub_events_handled_total", subscriber="a", topic="t.2") == 1
    assert value(m, "hubbub_events_handled_total", subscriber="b", topic="t.1") == 1
    assert value(m, "hubbub_events_in_flight", subscriber="a") == 3
    assert value(m, "hubbub_events_in_flight", subscriber="b") == 0
    assert value(m, "hubbub_handler_duration_seconds_count", subscriber="a") == 3
