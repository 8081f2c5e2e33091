"""A handler that runs longer than the heartbeat timeout keeps its connection.

Handlers run on handler threads while the connection's I/O thread keeps
answering heartbeats. With ``?heartbeat=2`` the broker closes a connection
that stays silent for about two heartbeat intervals, so a 6 s handler on the
I/O thread would lose it; here the one connection must survive and the event
must be acked once, not redelivered.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from fault_support import declare_on, queue_depth, recording_spec, wait_for

from hubbub.consumers.observer import Observer
from hubbub.consumers.worker import Worker
from hubbub.producers import Publisher
from hubbub.topology.observe import ManagementAPI

pytestmark = pytest.mark.fault

HEARTBEAT, HANDLER_SECONDS = 2, 6.0


class Connections(Observer):
    def __init__(self) -> None:
        self.opened = self.lost = 0

    def connected(self) -> None:
        self.opened += 1

    def disconnected(self) -> None:
        self.lost += 1


def test_a_handler_longer_than_the_heartbeat_keeps_the_connection(broker_url, hub_name, cleanup):
    topology = declare_on(broker_url, recording_spec(hub_name))
    cleanup(broker_url, topology)
    runs: list[tuple[str, bool]] = []
    finished = threading.Event()

    def slow(event):
        runs.append((event.id, event.redelivered))
        time.sleep(HANDLER_SECONDS)
        finished.set()

    connections = Connections()
    name = f"slow handler {hub_name}"
    url = f"{broker_url}?heartbeat={HEARTBEAT}"
    worker = Worker(topology, {"work": slow}, url=url, observer=connections, name=name)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.consuming.wait(15)
        assert _negotiated_heartbeat(broker_url, name) == HEARTBEAT
        with Publisher(hub_name, url=broker_url) as publisher:
            event_id = publisher.publish("job.slow", {})
        assert finished.wait(HANDLER_SECONDS + 10)
        wait_for(
            lambda: queue_depth(broker_url, topology.names.queue("work")) == (0, 1),
            10,
            "the event to be acked",
        )
        time.sleep(0.5)  # a redelivery, had the ack been lost, would arrive now
    finally:
        worker.stop()
        thread.join(30)
    assert runs == [(event_id, False)]
    assert (connections.opened, connections.lost) == (1, 1)  # the one loss is the stop


def _negotiated_heartbeat(broker_url: str, connection_name: str) -> int:
    api = ManagementAPI(broker_url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the management API lags a little
        for c in api.get("connections"):
            name = (c.get("client_properties") or {}).get("connection_name")
            if name == f"{connection_name} ({socket.gethostname()} pid {os.getpid()})":
                return int(c["timeout"])
        time.sleep(0.2)
    raise AssertionError(f"connection {connection_name!r} not found in the management API")
