"""The broker restarts (``stop_app``/``start_app``) or drops connections: nothing is lost.

These tests break the suite's own node (the ``node`` fixture), never the
shared broker. A steady stream of events is published and consumed while
the broker goes away; every event the publisher reported as confirmed must
be handled, duplicates are counted and reported.
"""

from __future__ import annotations

import threading
import time

import pytest
from fault_support import Tally, declare_on, recording_spec, wait_for

from hubbub.consumers.observer import Observer
from hubbub.consumers.worker import Worker
from hubbub.errors import BrokerConnectionError, HubbubError, PublishError
from hubbub.producers import Publisher
from hubbub.testing.broker import unique_name
from tests.support.node import RabbitNode

pytestmark = pytest.mark.fault

EVENTS = 3000


@pytest.fixture(scope="module")
def node():
    """A node of this module's own: the tests here restart it.

    RabbitMQ 3.10.8 sometimes comes back from ``stop_app``/``start_app`` with
    its quorum-queue dead-letter supervisor (``rabbit_fifo_dlx_sup``) dead,
    after which declaring any at-least-once quorum queue fails with 541
    INTERNAL_ERROR; tests of other modules must not inherit such a node.
    """
    with RabbitNode(unique_name("hubbub-restart")) as private:
        yield private


class Connections(Observer):
    def __init__(self) -> None:
        self.opened: list[float] = []

    def connected(self) -> None:
        self.opened.append(time.monotonic())


class Stream:
    """Publish ``count`` events one by one; a failed publish is retried with the same id."""

    def __init__(self, url: str, hub: str, count: int) -> None:
        self.publisher = Publisher(hub, url=url, confirm_timeout=10)
        self.count = count
        self.confirmed: list[str] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for i in range(self.count):
            event_id = f"e{i:05d}"
            while True:
                try:
                    self.publisher.publish("job.stream", {"i": i}, message_id=event_id)
                    break
                except (PublishError, BrokerConnectionError) as exc:
                    self.failures.append(type(exc).__name__)
                    time.sleep(0.1)
            self.confirmed.append(event_id)
            time.sleep(0.001)  # steady, not a burst


def test_publishing_and_consuming_survive_a_broker_restart_mid_stream(node, cleanup):
    hub = unique_name("fault-restart")
    topology = declare_on(node.url, recording_spec(hub, prefetch=100, concurrency=4))
    cleanup(node.url, topology)
    tally, connections = Tally(), Connections()
    worker = Worker(topology, {"work": tally}, url=node.url, observer=connections)
    consumer = threading.Thread(target=worker.run, daemon=True)
    consumer.start()
    assert worker.consuming.wait(15)
    stream = Stream(node.url, hub, EVENTS)
    stream.thread.start()
    try:
        wait_for(lambda: len(tally.seen()) >= EVENTS // 3, 60, "a third of the stream")
        node.stop_app()
        down = time.monotonic()
        node.start_app()
        up = time.monotonic()
        wait_for(lambda: len(connections.opened) >= 2, 30, "the consumer to reconnect")
        wait_for(lambda: tally.last > up, 30, "an event handled after the restart")
        outage = tally.last - down  # stop_app returned -> first event handled again
        stream.thread.join(120)
        assert not stream.thread.is_alive(), "the publisher did not finish"
        confirmed = set(stream.confirmed)
        wait_for(lambda: confirmed <= tally.seen(), 60, "every confirmed event")
    finally:
        worker.stop()
        consumer.join(30)
        stream.publisher.close()
    assert len(confirmed) == EVENTS
    lost = confirmed - tally.seen()
    assert not lost, f"{len(lost)} confirmed events were never handled"
    print(
        f"\nbroker restart: broker down {up - down:.1f}s; consumer handling again "
        f"{outage:.2f}s after it went down; {len(stream.failures)} publish attempts raised "
        f"({sorted(set(stream.failures))}) and were retried; "
        f"{tally.duplicates()} of {EVENTS} events handled twice; 0 lost"
    )


def test_a_consumer_reconnects_when_the_broker_closes_its_connection(node, cleanup):
    hub = unique_name("fault-drop")
    topology = declare_on(node.url, recording_spec(hub))
    cleanup(node.url, topology)
    tally, connections = Tally(), Connections()
    worker = Worker(topology, {"work": tally}, url=node.url, observer=connections)
    consumer = threading.Thread(target=worker.run, daemon=True)
    consumer.start()
    try:
        assert worker.consuming.wait(15)
        node.ctl("close_all_connections", "fault test")
        dropped = time.monotonic()
        wait_for(
            lambda: len(connections.opened) >= 2 and worker.consuming.is_set(),
            20,
            "the consumer to reconnect",
        )
        took = time.monotonic() - dropped
        with Publisher(hub, url=node.url) as publisher:
            event_id = publisher.publish("job.after", {})
        wait_for(lambda: event_id in tally.seen(), 10, "the event published after the drop")
    finally:
        worker.stop()
        consumer.join(30)
    print(f"\nconnection closed by the broker: consuming again after {took:.2f}s")


def test_a_publisher_raises_while_the_broker_is_down_and_reconnects_on_the_next_publish(
    node, cleanup
):
    hub = unique_name("fault-pub")
    topology = declare_on(node.url, recording_spec(hub))
    cleanup(node.url, topology)
    with Publisher(hub, url=node.url, confirm_timeout=5) as publisher:
        publisher.publish("job.before", {})
        node.stop_app()
        try:
            with pytest.raises(HubbubError) as raised:
                publisher.publish("job.during", {})
        finally:
            node.start_app()
        assert isinstance(raised.value, PublishError | BrokerConnectionError)
        assert "guest:guest" not in str(raised.value)
        publisher.publish("job.after", {})
