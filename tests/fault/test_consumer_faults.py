"""Consumer processes that die, are stopped, or lose their queue: nothing is lost.

Each test counts every event end to end with the recording handler (one
``start`` and one ``done`` line per handler run, per process) and reports
duplicates, which at-least-once delivery allows after a crash.
"""

from __future__ import annotations

import signal

import pytest
from fault_support import declare_on, queue_depth, recording_spec, wait_for, write_topology

from hubbub.producers import OutgoingEvent, Publisher

pytestmark = pytest.mark.fault


def publish(url: str, hub: str, count: int) -> set[str]:
    with Publisher(hub, url=url) as publisher:
        return set(
            publisher.publish_many(OutgoingEvent(f"job.n{i}", {"i": i}) for i in range(count))
        )


def test_kill_9_with_unacked_events_redelivers_them_to_the_restarted_consumer(
    broker_url, hub_name, tmp_path, consumer, recording, cleanup
):
    spec = recording_spec(hub_name, prefetch=10, concurrency=2)
    topology = declare_on(broker_url, spec)
    cleanup(broker_url, topology)
    file = write_topology(tmp_path / "t.yaml", spec)
    ids = publish(broker_url, hub_name, 40)

    first = consumer(broker_url, file, sleep=0.3)
    wait_for(lambda: len(recording.done(first.pid)) >= 4, 20, "the first consumer to work")
    first.kill()
    held = set(recording.started(first.pid)) - set(recording.done(first.pid))

    second = consumer(broker_url, file)
    done = recording.wait_done(ids, timeout=30)

    assert set(done) == ids, f"lost {len(ids - set(done))} events"
    redelivered = {
        r["id"] for r in recording.lines("start") if r["pid"] == second.pid and r["redelivered"]
    }
    assert held <= redelivered, "events the killed consumer held were not redelivered"
    assert len(redelivered) >= len(held) > 0
    duplicates = sum(n - 1 for n in done.values())
    print(
        f"kill -9: {len(held)} in flight at the kill, {len(redelivered)} redelivered, "
        f"{duplicates} handled twice"
    )
    assert queue_depth(broker_url, topology.names.queue("work"))[0] == 0


def test_sigterm_during_a_burst_finishes_and_acks_in_flight_events_and_leaves_the_rest(
    broker_url, hub_name, tmp_path, consumer, recording, cleanup
):
    spec = recording_spec(hub_name, prefetch=10, concurrency=3)
    topology = declare_on(broker_url, spec)
    cleanup(broker_url, topology)
    file = write_topology(tmp_path / "t.yaml", spec)
    ids = publish(broker_url, hub_name, 60)

    process = consumer(broker_url, file, sleep=0.5)
    wait_for(lambda: len(recording.done(process.pid)) >= 3, 20, "the consumer to work")
    process.signal(signal.SIGTERM)
    assert process.wait(20) == 0, process.output()

    started, done = recording.started(process.pid), recording.done(process.pid)
    assert set(started) == set(done), "a handler in flight at SIGTERM was not finished"
    assert max(done.values()) == 1
    remaining, consumers = queue_depth(broker_url, topology.names.queue("work"))
    # Acked exactly the handled ones; every other event is back in the queue.
    assert (remaining, consumers) == (len(ids) - len(done), 0), process.output()
    print(f"SIGTERM: {len(done)} finished and acked, {remaining} left queued")


def test_a_consumer_whose_queue_is_deleted_says_so_and_exits_non_zero(
    broker_url, hub_name, tmp_path, consumer, cleanup
):
    import pika

    spec = recording_spec(hub_name)
    topology = declare_on(broker_url, spec)
    cleanup(broker_url, topology)
    process = consumer(broker_url, write_topology(tmp_path / "t.yaml", spec))

    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    connection.channel().queue_delete(topology.names.queue("work"))
    connection.close()

    assert process.wait(20) == 1
    output = process.output()
    assert f"queue '{topology.names.queue('work')}' was deleted" in output, output
    assert "Traceback" not in output
