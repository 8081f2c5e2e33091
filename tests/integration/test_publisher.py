"""Publishing against the real broker: confirms, errors, threads, pipelining, the wire format."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter

import orjson
import pytest
from core_support import Recorder, channel, take_all

from hubbub import Hub
from hubbub.envelope import without_broker_headers
from hubbub.errors import ConfigurationError, PublishError
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.topology import loader

pytestmark = pytest.mark.integration


def one_subscriber(hub: str, *topics: str) -> dict:
    return {"hub": hub, "subscribers": {"s": {"handler": "json:dumps", "topics": list(topics)}}}


def consume_ids(url: str, queue: str, count: int, timeout: float = 20) -> list[str]:
    """Message ids of the first ``count`` messages in ``queue`` (auto-acked, fast)."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    with channel(url) as ch:
        ch.basic_qos(prefetch_count=1000)
        for method, props, _ in ch.consume(queue, auto_ack=True, inactivity_timeout=0.5):
            if method is not None:
                ids.append(props.message_id)
            if len(ids) >= count or time.monotonic() > deadline:
                break
        ch.cancel()
    return ids


def test_publish_returns_after_the_confirm_with_every_property_on_the_wire(
    declare, hub_name, broker_url
):
    declare(one_subscriber(hub_name, "user.*"))
    before = int(time.time())
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish(
            "user.signed_up", {"name": "Alice", "n": 1}, headers={"tenant": "t1"}
        )
        assert publisher.publish("user.deleted", [1, "two"], message_id="order-42") == "order-42"
        with pytest.raises(ConfigurationError, match="wildcard"):
            publisher.publish("user.*", 1)
    # Confirmed means stored: the messages are in the queue once publish returned.
    (method, props, body), (_, chosen, plain) = take_all(broker_url, f"{hub_name}.s")
    assert (method.exchange, method.routing_key) == (hub_name, "user.signed_up")
    assert orjson.loads(body) == {"name": "Alice", "n": 1}  # the body is the data alone
    assert props.message_id == event_id
    assert before <= props.timestamp <= time.time() + 1
    assert props.content_type == "application/json"
    assert props.type == "user.signed_up"
    assert props.app_id == f"hubbub@{socket.gethostname()}"
    assert props.delivery_mode == 2
    assert props.correlation_id == event_id
    assert without_broker_headers(props.headers) == {"tenant": "t1"}  # quorum adds a count
    # Any AMQP client can read an event: plain JSON, nothing hubbub-specific to decode.
    assert (chosen.message_id, plain) == ("order-42", b'[1,"two"]')
    assert without_broker_headers(chosen.headers) == {}


def test_a_missing_exchange_is_a_clear_error_and_the_publisher_keeps_working(
    declare, hub_name, broker_url
):
    with Publisher(hub_name, url=broker_url) as publisher:
        with pytest.raises(PublishError) as info:
            publisher.publish("a", {"lost": True})
        message = str(info.value)
        assert f"no exchange '{hub_name}'" in message
        assert "run 'hubbub topology apply' first" in message
        assert "not stored" in message

        declare(one_subscriber(hub_name, "a"))
        event_id = publisher.publish("a", {"kept": True})
    ((_, props, body),) = take_all(broker_url, f"{hub_name}.s")
    assert (props.message_id, orjson.loads(body)) == (event_id, {"kept": True})


def test_threads_share_one_publisher_and_every_event_arrives_once(declare, hub_name, broker_url):
    declare(one_subscriber(hub_name, "load.#"))
    threads, each = 8, 200
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    with Publisher(hub_name, url=broker_url) as publisher:

        def work(n: int) -> None:
            try:
                mine = [publisher.publish(f"load.t{n}", {"i": i}) for i in range(each)]
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                ids.extend(mine)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    assert errors == []
    assert len(ids) == len(set(ids)) == threads * each
    received = consume_ids(broker_url, f"{hub_name}.s", threads * each)
    duplicates = [i for i, n in Counter(received).items() if n > 1]
    assert duplicates == []
    assert set(received) == set(ids)


def test_publish_many_pipelines_and_everything_arrives(declare, hub_name, broker_url):
    declare(one_subscriber(hub_name, "bulk"))
    count = 1000
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = publisher.publish_many(OutgoingEvent("bulk", {"i": i}) for i in range(count))
    assert len(set(ids)) == count
    assert sorted(consume_ids(broker_url, f"{hub_name}.s", count)) == sorted(ids)


def test_an_event_no_subscriber_matches_is_parked_in_unrouted_with_a_warning(
    declare, hub_name, broker_url, caplog, tmp_path
):
    declare(one_subscriber(hub_name, "user.signed_up"))
    path = tmp_path / "topology.yaml"
    path.write_text(
        f"hub: {hub_name}\nsubscribers:\n  s: {{handler: 'json:dumps', topics: [user.signed_up]}}\n"
    )
    with Hub.from_file(path, url=broker_url) as hub, caplog.at_level(logging.WARNING, "hubbub"):
        assert hub.topology == loader.load(path)
        routed = hub.publish("user.signed_up", None)
        assert "no subscriber" not in caplog.text
        parked = hub.publish("nobody.listens", {"x": 1})
    assert f"no subscriber of hub '{hub_name}' matches 'nobody.listens'" in caplog.text
    assert [p.message_id for _, p, _ in take_all(broker_url, f"{hub_name}.s")] == [routed]
    ((method, props, body),) = take_all(broker_url, f"{hub_name}.unrouted")
    assert (method.routing_key, props.message_id, orjson.loads(body)) == (
        "nobody.listens",
        parked,
        {"x": 1},
    )


def test_a_handler_that_publishes_passes_on_correlation_and_causation(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(
        {
            "hub": hub_name,
            "subscribers": {
                "first": {"handler": "m:f", "topics": ["chain.start"]},
                "second": {"handler": "m:f", "topics": ["chain.next"]},
                "third": {"handler": "m:f", "topics": ["chain.last"]},
            },
        }
    )
    publisher = Publisher(hub_name, url=broker_url)
    first = Recorder(lambda e: publisher.publish("chain.next", {"from": e.id}))
    second = Recorder(lambda e: publisher.publish("chain.last", {"from": e.id}))
    third = Recorder()
    run_worker(topology, {"first": first, "second": second, "third": third})
    try:
        start_id = publisher.publish("chain.start", {"go": True})
        (last,) = third.wait_for(1)
    finally:
        publisher.close()
    (start,), (middle,) = first.events, second.events
    assert start.id == start_id
    assert (start.correlation_id, start.causation_id) == (start_id, None)
    assert (middle.correlation_id, middle.causation_id) == (start_id, start_id)
    assert (last.correlation_id, last.causation_id) == (start_id, middle.id)
    assert last.data == {"from": middle.id}


def test_publish_many_validates_every_event_before_sending_any(declare, hub_name, broker_url):
    from hubbub.errors import DelayTooLongError

    declare({"hub": hub_name, "subscribers": {"s": {"handler": "x:y", "topics": ["#"]}}})
    with Publisher(hub_name, url=broker_url) as publisher:
        for bad in (OutgoingEvent("bad..topic", {}), OutgoingEvent("ok", {}, delay=2**28)):
            with pytest.raises((ConfigurationError, DelayTooLongError)):
                publisher.publish_many([OutgoingEvent("ok", {"i": 1}), bad])
        publisher.publish("ok", {"i": 2})
    bodies = [orjson.loads(body) for _, _, body in take_all(broker_url, f"{hub_name}.s")]
    assert bodies == [{"i": 2}]
