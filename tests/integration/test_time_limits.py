"""Handler time limits, failed copies and the consumer's log line, against the real broker."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest
from core_support import channel, depth, take_all, wait_until

from hubbub.consumers import failure
from hubbub.consumers.metrics import Metrics
from hubbub.producers import Publisher

pytestmark = pytest.mark.integration


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_handler_past_its_time_limit_is_failed_its_thread_replaced_its_late_result_ignored(
    declare, run_worker, hub_name, broker_url
):
    spec = {
        "handler": "m:f",
        "topics": ["job.#"],
        "timeout": "0.5s",
        "concurrency": 2,
        "prefetch": 10,
        "retry": {"attempts": 1},
    }
    topology = declare({"hub": hub_name, "subscribers": {"s": spec}})
    gate, lock = threading.Event(), threading.Lock()
    active, most, handled = [0], [0], []

    def handler(event):
        if event.topic == "job.hang":
            gate.wait(30)  # hangs until the test lets go
            return
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
            handled.append(event.id)

    metrics = Metrics()
    worker = run_worker(topology, {"s": handler}, observer=metrics)
    try:
        with Publisher(hub_name, url=broker_url) as publisher:
            hung = {publisher.publish("job.hang", {}) for _ in range(2)}
            ok = {publisher.publish("job.ok", {"n": n}) for n in range(4)}
        wait_until(lambda: set(handled) == ok, 10, "the events behind the hung ones ran")
        assert most[0] == 2, "the written-off threads were not replaced"
        dlq = topology.names.dead_letter_queue("s")
        wait_until(lambda: depth(broker_url, dlq) == 2, 10, "both hung events dead-lettered")
        records = [props.headers for _, props, _ in take_all(broker_url, dlq)]
        assert {h[failure.MESSAGE] for h in records} == {"timed out after 0.5s"}
        assert {h[failure.EXCEPTION] for h in records} == {
            "hubbub.consumers.watchdog.HandlerTimeoutError"
        }

        healthy, details = worker.health()
        assert (healthy, details["stuck"]) == (False, {"s": 2})
        assert sample(metrics, "hubbub_events_in_flight", subscriber="s") == 0
        assert (
            sample(metrics, "hubbub_events_dead_lettered_total", subscriber="s", topic="job.hang")
            == 2
        )
    finally:
        gate.set()
    # The hung handlers return: their results are ignored, nothing is acked twice
    # (a second ack of a tag closes the channel: no reconnect happened), health is back.
    wait_until(lambda: worker.health()[0], 10, "the stuck threads to leave")
    assert sample(metrics, "hubbub_events_handled_total", subscriber="s", topic="job.hang") == 0
    assert sample(metrics, "hubbub_connections_total") == 1
    assert depth(broker_url, topology.names.queue("s")) == 0
    assert len(hung) == 2


def test_a_failed_copy_releases_its_event_after_a_backoff_not_at_once(
    declare, run_worker, hub_name, broker_url, caplog
):
    spec = {"handler": "m:f", "topics": ["t"], "retry": {"attempts": 1}, "delivery_limit": 1000}
    topology = declare({"hub": hub_name, "subscribers": {"s": spec}})
    calls: list[float] = []

    def always_fails(event):
        calls.append(time.monotonic())
        raise ValueError("boom")

    run_worker(topology, {"s": always_fails})
    with channel(broker_url) as ch:  # the copy's exchange is gone: every copy fails (404)
        ch.exchange_delete(topology.names.dead_letter_exchange)
    with caplog.at_level(logging.ERROR, logger="hubbub.consumers"):
        with Publisher(hub_name, url=broker_url) as publisher:
            publisher.publish("t", {})
        wait_until(lambda: len(calls) >= 3, 15, "two redeliveries")
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9, gaps  # 1 s, then 2 s
    assert "releasing it to its queue in 1s" in caplog.text


def test_the_consumer_says_1_handler_thread_and_its_time_limit(
    declare, run_worker, hub_name, caplog
):
    spec = {"handler": "m:f", "topics": ["t"], "timeout": "45s"}
    topology = declare({"hub": hub_name, "subscribers": {"s": spec}})
    with caplog.at_level(logging.INFO, logger="hubbub.consumers"):
        run_worker(topology, {"s": lambda event: None})
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("consuming")]
    assert line.endswith("(prefetch 50, 1 handler thread, time limit 45s)"), line
