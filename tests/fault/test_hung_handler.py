"""A handler that never returns, and one still running at the shutdown timeout.

The hung-handler test runs on a private node of its own whose
``consumer_timeout`` is 3 s and whose channels check it every 200 ms
(``channel_tick_interval``, advanced config), so that the broker's timeout,
which closes the channel and gives back every prefetched event, would strike
within the test if a delivery stayed unacked. The handler's own time limit
(1 s) must fail the hung event first, through its retry policy, and keep the
prefetched events running.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pika
import pytest
from fault_support import declare_on, queue_depth, recording_spec, wait_for, write_topology

from hubbub.consumers import failure
from hubbub.consumers.worker import Worker
from hubbub.producers import Publisher
from hubbub.testing.broker import unique_name
from tests.support.node import RabbitNode

pytestmark = pytest.mark.fault

HERE = Path(__file__).resolve().parent
CONSUMER_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def strict_node(tmp_path_factory: pytest.TempPathFactory):
    """A private node whose consumer_timeout strikes after 3 s, checked every 200 ms."""
    base = tmp_path_factory.mktemp("strict-node")
    (base / "advanced.config").write_text("[{rabbit, [{channel_tick_interval, 200}]}].\n")
    config = [f"consumer_timeout = {CONSUMER_TIMEOUT_MS}"]
    with RabbitNode(unique_name("hubbub-strict"), base_dir=base, config=config) as node:
        yield node


def health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def dead_lettered_headers(url: str, queue: str) -> dict:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        method, props, _ = connection.channel().basic_get(queue, auto_ack=False)
        assert method is not None, f"nothing in {queue}"
        return dict(props.headers or {})
    finally:
        connection.close()


def test_a_hung_handler_is_failed_at_its_time_limit_and_the_prefetched_events_run(
    strict_node, tmp_path, consumer, recording, cleanup
):
    url = strict_node.url
    spec = recording_spec(
        unique_name("hung"),
        handler="hang_app:maybe_hang",
        timeout="1s",
        prefetch=10,
        delivery_limit=2,
        retry={"attempts": 2, "backoff": "1s", "jitter": False},
    )
    topology = declare_on(url, spec)
    cleanup(url, topology)
    file = write_topology(tmp_path / "t.yaml", spec)
    with Publisher(topology.hub, url=url) as publisher:
        hung = publisher.publish("job.hang", {"hang": True})
        innocent = {publisher.publish("job.ok", {"n": n}) for n in range(5)}

    started = time.monotonic()
    pythonpath = os.pathsep.join([str(HERE), os.environ["PYTHONPATH"]])  # hang_app, tests.support
    process = consumer(url, file, "--shutdown-timeout", "2", PYTHONPATH=pythonpath)
    done = recording.wait_done(innocent, timeout=15)
    assert set(done) == innocent, f"prefetched events never ran:\n{process.output()}"
    dlq = topology.names.dead_letter_queue("work")
    wait_for(lambda: queue_depth(url, dlq)[0] == 1, 15, "the hung event to be dead-lettered")
    headers = dead_lettered_headers(url, dlq)
    assert headers[failure.MESSAGE] == "timed out after 1s"
    assert headers[failure.EXCEPTION].endswith("HandlerTimeoutError")
    assert "maybe_hang" in headers[failure.TRACEBACK]  # where it was stuck
    assert [r["attempt"] for r in recording.lines("hang")] == [1, 2]  # retried once, by policy
    assert {r["id"] for r in recording.lines("hang")} == {hung}

    # Past the broker's consumer_timeout: it never closed the channel, so no
    # event came back (none redelivered, none handled twice).
    wait_for(lambda: time.monotonic() - started > CONSUMER_TIMEOUT_MS / 1000 + 1, 10, "time")
    assert "PRECONDITION_FAILED" not in process.output()  # the broker's consumer_timeout
    assert all(not r["redelivered"] for r in recording.lines("start"))
    assert recording.done() == {i: 1 for i in innocent}
    assert queue_depth(url, topology.names.queue("work"))[0] == 0

    # The two hung threads are written off: unhealthy, but nothing in flight.
    status, details = health(process.metrics_port)
    assert (status, details["stuck"]) == (503, {"work": 2}), details
    assert 'hubbub_events_in_flight{subscriber="work"} 0.0' in process.metrics()

    # SIGTERM stops it within the shutdown timeout, stuck threads or not.
    process.signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert process.wait(10) == 0, process.output()
    assert time.monotonic() - signalled < 2 + 2.5, process.output()


def test_the_shutdown_timeout_names_each_unfinished_event_and_exits_3_at_once(
    broker_url, hub_name, tmp_path, consumer, recording, cleanup
):
    spec = recording_spec(hub_name)
    topology = declare_on(broker_url, spec)
    cleanup(broker_url, topology)
    file = write_topology(tmp_path / "t.yaml", spec)
    process = consumer(broker_url, file, "--shutdown-timeout", "2", sleep=8)
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("job.slow", {})
    wait_for(lambda: event_id in recording.started(), 10, "the handler to start")

    process.signal(signal.SIGTERM)
    signalled = time.monotonic()
    status = process.wait(10)
    took = time.monotonic() - signalled
    output = process.output()
    assert status == 3, output
    assert 2 <= took < 2 + 2.5, output  # the handler alone needs 8 s
    [warning] = [line for line in output.splitlines() if "released unfinished" in line]
    assert "WARNING" in warning and event_id in warning, warning
    assert "(job.slow) of work" in warning, warning
    assert "Traceback" not in output
    assert event_id not in recording.done()  # the side effect never happened here...
    assert queue_depth(broker_url, topology.names.queue("work")) == (1, 0)  # ...and it is back


def test_a_channel_closed_by_the_brokers_consumer_timeout_is_explained(
    strict_node, cleanup, caplog
):
    """A time limit above the broker's consumer_timeout: the close says what to change."""
    url = strict_node.url
    topology = declare_on(url, recording_spec(unique_name("ctimeout"), timeout="1m"))
    cleanup(url, topology)
    gate = threading.Event()
    worker = Worker(topology, {"work": lambda event: gate.wait(30)}, url=url)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.consuming.wait(15)
        with caplog.at_level(logging.ERROR, logger="hubbub.consumers"):
            with Publisher(topology.hub, url=url) as publisher:
                publisher.publish("job.x", {})
            wait_for(lambda: "consumer_timeout" in caplog.text, 10, "the channel to be closed")
    finally:
        gate.set()
        worker.stop()
        thread.join(15)
    [line] = [r.getMessage() for r in caplog.records if "consumer_timeout" in r.getMessage()]
    assert "stayed unacked past its consumer_timeout" in line
    assert "keep the subscriber's timeout (1m)" in line
