"""``concurrency: N`` runs N handlers of one subscriber at the same time."""

from __future__ import annotations

import threading
import time

import pytest

from hubbub.producers import OutgoingEvent, Publisher

pytestmark = pytest.mark.integration

THREADS = 4


def test_n_handler_threads_run_in_parallel_while_acks_stay_on_the_io_thread(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(
        {
            "hub": hub_name,
            "subscribers": {
                "work": {"handler": "x:y", "topics": ["job.#"], "concurrency": THREADS}
            },
        }
    )
    # Every handler waits until THREADS handlers are inside at once: with fewer
    # threads in parallel the barrier times out and the events fail.
    barrier = threading.Barrier(THREADS, timeout=10)
    lock = threading.Lock()
    inside, most, threads, done = 0, 0, set(), []

    def handler(event):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
            threads.add(threading.current_thread().name)
        barrier.wait()
        time.sleep(0.05)
        with lock:
            inside -= 1
            done.append(event.id)

    worker = run_worker(topology, {"work": handler})
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = publisher.publish_many(OutgoingEvent("job.x", {"i": i}) for i in range(2 * THREADS))
    deadline = time.monotonic() + 20
    while len(done) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.02)

    assert sorted(done) == sorted(ids)
    assert most == THREADS
    assert len(threads) == THREADS and all(t.startswith("hubbub-work") for t in threads)
    assert worker.health()[0]
