"""The batched fast paths against the real broker: nothing reordered, lost or half-sent.

publish_many prepares and sends in chunks, writes a batch's frames in one
socket write, and counts confirms in a group; the consumer feeds handler
threads from one queue and writes a batch's acks at once. These tests run
batches across many chunks and check order, ids, and the all-or-nothing
check. About 3 s.
"""

from __future__ import annotations

import threading

import orjson
import pytest
from core_support import depth, take_all, wait_until

from hubbub.consumers.worker import Worker
from hubbub.errors import ConfigurationError, PublishError
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.producers.publisher import CHUNK
from hubbub.transport.pika import _inbound as inbound
from hubbub.transport.pika import _outbound as outbound

pytestmark = pytest.mark.integration


def topology(hub: str) -> dict:
    return {"hub": hub, "subscribers": {"s": {"handler": "json:dumps", "topics": ["t.#"]}}}


def test_a_batch_of_many_chunks_arrives_complete_and_in_order(declare, hub_name, broker_url):
    declare(topology(hub_name))
    count = 4 * CHUNK + 17
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = publisher.publish_many(OutgoingEvent("t.x", {"i": i}) for i in range(count))
    stored = take_all(broker_url, f"{hub_name}.s")
    assert [props.message_id for _, props, _ in stored] == ids
    assert [orjson.loads(body)["i"] for _, _, body in stored] == list(range(count))


def test_a_bad_event_in_the_last_chunk_stops_the_whole_batch(declare, hub_name, broker_url):
    declare(topology(hub_name))
    events = [OutgoingEvent("t.x", {"i": i}) for i in range(3 * CHUNK)]
    events.append(OutgoingEvent("t..bad", {}))
    with Publisher(hub_name, url=broker_url) as publisher:
        with pytest.raises(ConfigurationError):
            publisher.publish_many(events)
        # not serializable: found before anything is sent, named in one line
        with pytest.raises(
            PublishError, match=r"event 750 of the batch: .*data\['s'\] is of type set"
        ):
            publisher.publish_many([*events[:-1], OutgoingEvent("t.x", {"s": {1, 2}})])
    assert depth(broker_url, f"{hub_name}.s") == 0


def test_every_event_of_a_burst_is_handled_once_and_acked(declare, hub_name, broker_url):
    topo = declare(topology(hub_name))
    count = 2000
    seen: list[int] = []
    lock = threading.Lock()

    def handler(event):
        with lock:
            seen.append(event.data["i"])

    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish_many(OutgoingEvent("t.x", {"i": i}) for i in range(count))
    worker = Worker(topo, {"s": handler}, url=broker_url, concurrency=4, prefetch=300)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: len(seen) >= count, 30, "every event handled")
    finally:
        worker.stop()
        thread.join(30)
    assert sorted(seen) == list(range(count))
    assert depth(broker_url, f"{hub_name}.s") == 0  # all acked: nothing came back


def test_events_of_every_size_reach_the_handler_whole(declare, hub_name, broker_url):
    """Bodies from empty to several frames long (pika's default frame_max is
    128 KiB), headers of every kind, interleaved: the inbound reader hands the
    handler exactly what was published."""
    topo = declare(topology(hub_name))
    sizes = [0, 1, 200, 131_000, 131_072, 400_000, 3, 1_000_000, 50]
    sent = []
    with Publisher(hub_name, url=broker_url) as publisher:
        for i, size in enumerate(sizes):
            data = {"i": i, "pad": "é" * (size // 2)}
            headers = {"n": i, "when": "now", "nested": {"a": [1, "b", True]}}
            sent.append((publisher.publish("t.size", data, headers=headers), data, headers))
    got: dict[str, tuple[object, object]] = {}

    def handler(event):
        got[event.id] = (event.data, dict(event.headers))

    worker = Worker(topo, {"s": handler}, url=broker_url, prefetch=4)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: len(got) >= len(sizes), 30, "every event handled")
    finally:
        worker.stop()
        thread.join(30)
    for event_id, data, headers in sent:
        assert got[event_id] == (data, headers)
    assert depth(broker_url, f"{hub_name}.s") == 0


def test_real_connections_read_and_write_through_hubbubs_frame_paths(declare, hub_name, broker_url):
    """The consumer's connection reads with the pika transport's _inbound, the publisher's
    transport writes with its _outbound (pika's own paths are only fallbacks)."""
    topo = declare(topology(hub_name))
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("t.x", {"i": 1})
        link = publisher.transport._link  # type: ignore[attr-defined]
        assert link._publish is outbound.publish
    handled = threading.Event()
    worker = Worker(topo, {"s": lambda event: handled.set()}, url=broker_url)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert handled.wait(30)
        connection = worker.transport._supervisor.connection  # type: ignore[attr-defined]
        reader = getattr(connection._on_data_available, "__self__", None)
        assert isinstance(reader, inbound._Reader)
    finally:
        worker.stop()
        thread.join(30)
