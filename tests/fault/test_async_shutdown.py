"""SIGTERM with hundreds of async handlers in flight, and a handler that blocks the loop.

``hubbub consume`` runs ``async def`` handlers as tasks on one event loop. At
SIGTERM the tasks in flight get ``--shutdown-timeout`` seconds: those that
end by then are acked, the rest are cancelled and their events released to
the queue (each named in a WARNING, exit status 3). A second consumer must
then find exactly the released events: none lost, none finished twice.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from async_app import BLOCK, seconds
from fault_support import declare_on, queue_depth, wait_for, write_topology

from hubbub.cli.consume import EXIT_UNFINISHED
from hubbub.producers import OutgoingEvent, Publisher

pytestmark = pytest.mark.fault

HERE = Path(__file__).resolve().parent
EVENTS, IN_FLIGHT, SHUTDOWN_TIMEOUT = 400, 200, 3.0
RELEASED = re.compile(r"event (\S+) \(job\.\d+\) of work released unfinished")


def spec(hub: str, handler: str, **options: object) -> dict:
    work = {"handler": f"async_app:{handler}", "topics": ["job.#"], **options}
    return {"hub": hub, "subscribers": {"work": work}}


def app_path() -> str:
    """async_app (this directory) and tests.support (the root) importable in the child."""
    return os.pathsep.join([str(HERE), os.environ["PYTHONPATH"]])


def test_sigterm_with_200_async_events_in_flight_acks_the_finished_and_releases_the_rest(
    broker_url, hub_name, tmp_path, consumer, recording, cleanup
):
    topology_spec = spec(hub_name, "sleepy", concurrency=IN_FLIGHT, prefetch=EVENTS)
    topology = declare_on(broker_url, topology_spec)
    cleanup(broker_url, topology)
    file = write_topology(tmp_path / "t.yaml", topology_spec)
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = set(publisher.publish_many(OutgoingEvent(f"job.{n}", {}) for n in range(EVENTS)))
    timeout = str(SHUTDOWN_TIMEOUT)

    first = consumer(broker_url, file, "--shutdown-timeout", timeout, PYTHONPATH=app_path())
    wait_for(lambda: len(recording.started(first.pid)) >= IN_FLIGHT, 20, "200 in flight")
    first.signal(signal.SIGTERM)
    signalled = time.time()
    status = first.wait(SHUTDOWN_TIMEOUT + 10)
    took = time.time() - signalled
    output = first.output()

    started, done = recording.started(first.pid), recording.done(first.pid)
    unfinished = set(started) - set(done)
    assert status == EXIT_UNFINISHED, output
    assert SHUTDOWN_TIMEOUT <= took < SHUTDOWN_TIMEOUT + 2.5, output
    assert "Traceback" not in output, output
    assert max(started.values()) == 1 and max(done.values()) == 1
    # Tasks ran at once (200 started before any 0.1-6 s sleep could end)...
    assert len(started) >= IN_FLIGHT
    # ...those ending within the timeout finished, the rest were cut short:
    finished_in_shutdown = [
        r for r in recording.lines("done") if r["pid"] == first.pid and r["at"] >= signalled
    ]
    assert finished_in_shutdown, "no handler was let finish after SIGTERM"
    # SIGTERM stops new starts (the child notices it within 0.2 s; 1 s of slack).
    late = [r["id"] for r in recording.lines("start") if r["at"] > signalled + 1]
    assert not late, f"{len(late)} events started after SIGTERM"
    assert unfinished, "every handler ended within the shutdown timeout: nothing was tested"
    assert all(seconds(i) > SHUTDOWN_TIMEOUT - 0.5 for i in unfinished)
    # Each unfinished event named in a WARNING. A handler whose last line ran at
    # the deadline but that had not returned to hubbub yet is released too (its
    # event comes round again: at least once); nothing that ended earlier is.
    warnings = [line for line in output.splitlines() if "released unfinished" in line]
    assert all("WARNING" in line for line in warnings), warnings
    named = {RELEASED.search(line).group(1) for line in warnings}
    at_deadline = named - unfinished
    ended = {r["id"]: r["at"] for r in recording.lines("done") if r["pid"] == first.pid}
    assert unfinished <= named, output
    assert len(at_deadline) <= 3, output
    assert all(ended[i] > signalled + SHUTDOWN_TIMEOUT - 0.5 for i in at_deadline), output
    assert f"with {len(named)} event(s) unfinished, to be redelivered" in output
    # Acked exactly what finished; the rest (unfinished and never started) is back.
    acked = set(done) - at_deadline
    assert queue_depth(broker_url, topology.names.queue("work")) == (EVENTS - len(acked), 0)

    second = consumer(broker_url, file, PYTHONPATH=app_path(), ASYNC_APP_FAST="1")
    handled = recording.wait_done(ids, timeout=30)
    again = recording.done(second.pid)
    second.signal(signal.SIGTERM)
    assert second.wait(20) == 0, second.output()

    assert set(handled) == ids, f"lost {len(ids - set(handled))} events"
    assert set(again) == ids - acked, "an acked event came back, or a released one did not"
    twice = {i for i, n in handled.items() if n > 1}
    assert twice == at_deadline, "an event was finished twice that had been acked"
    redelivered = {
        r["id"] for r in recording.lines("start") if r["pid"] == second.pid and r["redelivered"]
    }
    assert unfinished <= redelivered
    assert queue_depth(broker_url, topology.names.queue("work")) == (0, 0)
    print(
        f"\nSIGTERM with {len(started) - len(done) + len(finished_in_shutdown)} in flight: "
        f"{len(finished_in_shutdown)} finished in the {SHUTDOWN_TIMEOUT:g}s timeout, "
        f"{len(unfinished)} released; exit after {took:.2f}s; "
        f"{len(again)} handled by the second consumer"
    )


def test_a_handler_blocking_the_loop_is_named_and_the_other_events_still_run(
    broker_url, hub_name, tmp_path, consumer, recording, cleanup
):
    topology_spec = spec(hub_name, "block_or_work", concurrency=10)
    topology = declare_on(broker_url, topology_spec)
    cleanup(broker_url, topology)
    file = write_topology(tmp_path / "t.yaml", topology_spec)
    process = consumer(broker_url, file, PYTHONPATH=app_path())

    with Publisher(hub_name, url=broker_url) as publisher:
        blocker = publisher.publish("job.block", {"block": True})
        wait_for(lambda: blocker in recording.started(process.pid), 10, "the handler to block")
        others = set(publisher.publish_many(OutgoingEvent(f"job.{n}", {}) for n in range(20)))
    handled = recording.wait_done(others | {blocker}, timeout=20)
    process.signal(signal.SIGTERM)
    assert process.wait(20) == 0, process.output()
    output = process.output()

    assert set(handled) == others | {blocker} and max(handled.values()) == 1
    line = (HERE / "async_app.py").read_text().splitlines().index(
        "        time.sleep(BLOCK)  # the mistake the loop watch names"
    ) + 1
    [warning] = [x for x in output.splitlines() if "the event loop has been blocked" in x]
    assert "WARNING" in warning, warning
    assert (
        f"by the handler of work (async_app:block_or_work) on event {blocker} "
        f"at {HERE / 'async_app.py'}:{line} (block_or_work)"
    ) in warning, warning
    blocked = float(re.search(r"blocked for ([\d.]+)s", warning).group(1))
    assert 0.5 <= blocked <= BLOCK, warning
