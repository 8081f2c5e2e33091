"""A subscriber's ``delay:`` on the real broker: a changed delay, its old wait queue, dead-letters.

Each test has a vhost of its own (old wait queues included, all is deleted after).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from dlq_support import ids_in, read

from hubbub.admin import Admin, select
from hubbub.cli.status import render
from hubbub.consumers.worker import Worker
from hubbub.envelope import ATTEMPT, TOPIC
from hubbub.producers import Publisher
from hubbub.topology import apply, loader, make_plan
from hubbub.topology.model import Topology
from hubbub.topology.sync import destroy, make_teardown

pytestmark = pytest.mark.integration

#: How late an event may arrive (margin for a loaded 2-core CI box).
LATE = 1.5


def topology(delay: str | None, **retry: object) -> Topology:
    sub: dict[str, object] = {"handler": "json:dumps", "topics": ["user.#"]}
    if delay is not None:
        sub["delay"] = delay
    if retry:
        sub["retry"] = retry
    return loader.from_mapping({"hub": "events", "subscribers": {"reminder": sub}})


@pytest.fixture
def worker(hubbub_vhost_url: str) -> Iterator[list[Worker]]:
    """Workers started by :func:`start` in this test; stopped after it."""
    running: list[Worker] = []
    yield running
    for w in running:
        w.stop()


def start(running: list[Worker], topology: Topology, handler, url: str) -> None:
    w = Worker(topology, {"reminder": handler}, url=url)
    threading.Thread(target=w.run, daemon=True).start()
    assert w.consuming.wait(15), "worker did not start consuming"
    running.append(w)


def until(done, within: float) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.05)


def test_a_changed_delay_keeps_waiting_events_and_a_later_apply_deletes_the_old_queue(
    hubbub_vhost_url, worker
):
    url = hubbub_vhost_url
    old, new = topology("6s"), topology("1s")
    old_queue = old.names.wait_queue("reminder", 6)
    apply(old, [url])
    arrived: dict[int, float] = {}
    start(worker, old, lambda event: arrived.setdefault(event.data["n"], time.time()), url)
    with Publisher("events", url=url) as publisher:
        before = time.time()
        for n in range(3):
            publisher.publish("user.active", {"n": n})

        (change,) = [c for c in make_plan(new, [url]).changes if c.name == old_queue]
        assert change.action == "obsolete"
        assert "reminder's old 6s wait queue" in change.detail
        assert "keep their 6s delay" in change.detail
        apply(new, [url])
        # unbound now, still holding its events: an apply keeps it (counted again before any delete)
        apply(new, [url])
        assert len(read(url, old_queue)) == 3

        after = time.time()
        publisher.publish("user.active", {"n": 9})
    until(lambda: 9 in arrived, within=1 + LATE)
    assert 1 <= arrived[9] - after <= 1 + LATE
    assert set(arrived) == {9}  # the old events still wait their 6 s
    until(lambda: len(arrived) == 4, within=6 + LATE)
    for n in range(3):
        assert 6 <= arrived[n] - before <= 6 + LATE, (n, arrived[n] - before)

    # drained: a later apply deletes it (the management API's counts may lag a few seconds)
    def deleted() -> bool:
        apply(new, [url])
        return not any(q == old_queue for q, _ in make_teardown(new, [url]).queues)

    until(deleted, within=15)
    assert not any(c.name == old_queue for c in make_plan(new, [url]).changes)


def test_a_delayed_subscribers_dead_letter_is_replayed_to_its_queue_without_waiting_again(
    hubbub_vhost_url, worker
):
    url = hubbub_vhost_url
    delayed = topology("1s", attempts=1)
    apply(delayed, [url])
    failed = threading.Event()

    def handler(event):
        failed.set()
        raise ValueError(f"cannot remind {event.data['n']}")

    start(worker, delayed, handler, url)
    with Publisher("events", url=url) as publisher:
        event_id = publisher.publish("user.active", {"n": 1})
    assert failed.wait(1 + 5)
    for w in worker:
        w.stop()
    admin = Admin(delayed, url=url)
    until(lambda: len(admin.show("reminder")) == 1, within=5)
    (record,) = admin.show("reminder")
    assert (record.id, record.topic, record.attempts) == (event_id, "user.active", 1)
    # the broker's death headers from the wait are gone (the DLQ's own x-delivery-count aside)
    assert not [k for k in record.headers if "death" in k], dict(record.headers)

    admin.replay("reminder", select(ids=[event_id]))
    # straight into its queue (not through the wait queue): there at once
    [(replayed_id, headers, _)] = read(url, delayed.names.queue("reminder"))
    assert replayed_id == event_id
    assert headers[TOPIC] == "user.active" and ATTEMPT not in headers
    assert not [k for k in headers if "death" in k]


def test_destroy_removes_wait_exchanges_and_wait_queues(hubbub_vhost_url):
    url = hubbub_vhost_url
    apply(topology("3s"), [url])
    apply(topology("5s"), [url])  # leaves the 3 s queue behind, unbound
    target = make_teardown(topology("5s"), [url])
    queues = {q for q, _ in target.queues}
    assert {"hubbub.v1.events.wait.reminder.3s", "hubbub.v1.events.wait.reminder.5s"} <= queues
    assert "hubbub.v1.events.wait.reminder" in target.exchanges
    destroy(target, [url])
    assert make_teardown(topology("5s"), [url]).empty


def test_status_counts_the_events_waiting_in_wait_queues(hubbub_vhost_url):
    url = hubbub_vhost_url
    apply(topology("60s"), [url])
    with Publisher("events", url=url) as publisher:
        publisher.publish("user.active", {"n": 1})
        publisher.publish("user.active", {"n": 2})
    apply(topology("90s"), [url])  # the old queue's events count too
    with Publisher("events", url=url) as publisher:
        publisher.publish("user.active", {"n": 3})
    admin = Admin(topology("90s"), url=url)
    until(lambda: admin.status().waiting == 3, within=20)  # the API refreshes every ~5 s
    assert render(admin.status()).splitlines()[-1] == "waiting (subscribers' delay:): 3"


def _removable(hub: str, *, remind: bool) -> dict:
    subs: dict = {"now": {"handler": "x:y", "topics": ["user.#"]}}
    if remind:
        subs["remind"] = {"handler": "x:y", "topics": ["user.#"], "delay": "2s"}
    return {"hub": hub, "subscribers": subs}


def test_events_waiting_for_a_removed_subscriber_are_not_parked_as_unrouted(
    declare, hub_name, broker_url
):
    """Removing a delayed subscriber keeps the binding of its wait exchange to its (kept)
    queue: its waiting events reach that queue, as plan says, instead of being parked as
    unrouted, where a replay to the hub would give ``now`` a second copy."""
    first = declare(_removable(hub_name, remind=True))
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("user.signed_up", {"n": 1})
    declare(_removable(hub_name, remind=False))
    # Polled, not a fixed 3.5 s sleep: once the 2 s wait is over the event is in
    # ``remind``; a copy parked as unrouted would have been routed by then too.
    until(lambda: ids_in(broker_url, first.names.queue("remind")) == [event_id], within=10)

    assert ids_in(broker_url, first.names.unrouted) == []
    assert ids_in(broker_url, first.names.queue("remind")) == [event_id]
    assert ids_in(broker_url, first.names.queue("now")) == [event_id]
