"""Consuming against the real broker: acks, dead-letters, isolation, malformed and plain messages,
competing consumers, and one channel per subscriber."""

from __future__ import annotations

import socket
import threading
import time

import orjson
import pika
import pytest
from core_support import Recorder, channel, consumers_of, depth, take_all, wait_until

from hubbub.consumers import failure
from hubbub.envelope import ATTEMPT, TOPIC
from hubbub.producers import OutgoingEvent, Publisher

pytestmark = pytest.mark.integration


class PaymentDeclined(Exception):
    """A handler's own exception type."""


def subscribers(hub: str, **topics_by_name: list[str] | dict) -> dict:
    subs = {}
    for name, spec in topics_by_name.items():
        subs[name] = {"handler": "m:f", **(spec if isinstance(spec, dict) else {"topics": spec})}
    return {"hub": hub, "subscribers": subs}


def test_an_event_is_acked_only_after_its_handler_returns(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(subscribers(hub_name, s=["job"]))
    gate = threading.Event()
    got = Recorder(lambda e: gate.wait(10) if e.data == 1 else None)
    run_worker(topology, {"s": got}, prefetch=1, concurrency=1)
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("job", 1)
        publisher.publish("job", 2)
    got.wait_for(1)
    # With prefetch 1, the broker holds event 2 back while event 1 is unacked. Were event 1
    # acked on arrival, event 2 would be delivered at once; give that a generous moment.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert depth(broker_url, f"{hub_name}.s") == 1
        assert len(got.events) == 1
        time.sleep(0.05)
    gate.set()
    # Event 2 can only arrive once event 1's ack freed the prefetch slot.
    assert [e.data for e in got.wait_for(2)] == [1, 2]
    wait_until(lambda: depth(broker_url, f"{hub_name}.s") == 0, 5, "the queue is empty")


def test_a_failing_handler_dead_letters_to_its_own_queue_and_others_are_unaffected(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(
        subscribers(
            hub_name,
            fails={"topics": ["order.placed"], "retry": {"attempts": 1}},
            works=["order.#"],
        )
    )

    long_detail = "declined by the bank; " * 300  # makes a traceback over the record's cap

    def fail(event):
        raise PaymentDeclined(f"card expired for order {event.data['order']}: {long_detail}")

    worked = Recorder()
    failed = Recorder(fail)
    run_worker(topology, {"fails": failed, "works": worked})
    before_ms = int(time.time() * 1000)
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("order.placed", {"order": 7}, headers={"tenant": "t1"})
    (handled,) = worked.wait_for(1)
    assert (handled.id, handled.data) == (event_id, {"order": 7})

    dlq = f"{hub_name}.fails.dlq"
    wait_until(lambda: depth(broker_url, dlq) == 1, 10, "the failed event is dead-lettered")
    ((_, props, body),) = take_all(broker_url, dlq)
    assert orjson.loads(body) == {"order": 7}
    assert (props.message_id, props.type, props.correlation_id) == (
        event_id,
        "order.placed",
        event_id,
    )
    headers = props.headers
    assert headers["tenant"] == "t1"
    assert headers[failure.EXCEPTION] == f"{__name__}.PaymentDeclined"
    message = f"card expired for order 7: {long_detail}"
    assert headers[failure.MESSAGE] == message[: failure.MAX_MESSAGE]
    tb = headers[failure.TRACEBACK]
    assert len(tb) == failure.MAX_TRACEBACK  # truncated, keeping its end
    assert tb.endswith(f"{long_detail[-1000:]}\n")
    assert headers[failure.REASON] == "attempts exhausted"
    assert headers[TOPIC] == "order.placed"
    assert headers[ATTEMPT] == 1
    assert headers[failure.SUBSCRIBER] == "fails"
    assert headers[failure.QUEUE] == f"{hub_name}.fails"
    assert headers[failure.EXCHANGE] == hub_name
    assert headers[failure.ROUTING_KEY] == "order.placed"
    assert headers[failure.HOST] == socket.gethostname()
    assert before_ms <= headers[failure.FIRST_TIME] <= int(time.time() * 1000)
    assert headers[failure.LAST_TIME] == headers[failure.FIRST_TIME]
    assert not any(k.startswith("x-death") for k in headers)

    assert len(failed.events) == 1  # dead-lettered, not redelivered
    assert depth(broker_url, f"{hub_name}.fails") == 0  # the original was acked
    assert depth(broker_url, f"{hub_name}.works.dlq") == 0
    assert [e.id for e in worked.events] == [event_id]


def test_malformed_messages_are_dead_lettered_at_once_and_the_consumer_keeps_running(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(subscribers(hub_name, s=["m.#"]))  # default retry: 5 attempts
    got = Recorder()
    worker = run_worker(topology, {"s": got})
    with channel(broker_url) as ch:  # a foreign client, plain pika
        ch.confirm_delivery()
        json_type = pika.BasicProperties(content_type="application/json", message_id="bad-json")
        ch.basic_publish(hub_name, "m.json", b"{not json", json_type)
        text = pika.BasicProperties(content_type="text/plain", message_id="plain-text")
        ch.basic_publish(hub_name, "m.text", b'{"a": 1}', text)
    with Publisher(hub_name, url=broker_url) as publisher:
        good_id = publisher.publish("m.good", {"ok": True})
        assert [e.id for e in got.wait_for(1)] == [good_id]

        dlq = f"{hub_name}.s.dlq"
        wait_until(lambda: depth(broker_url, dlq) == 2, 10, "both are dead-lettered")
        dead = {p.message_id: (p.headers, body) for _, p, body in take_all(broker_url, dlq)}
        headers, body = dead["bad-json"]
        assert body == b"{not json"
        assert headers[failure.REASON] == "malformed message"
        assert headers[failure.EXCEPTION] == "hubbub.errors.MalformedMessageError"
        assert headers[failure.MESSAGE].startswith("body is not valid JSON")
        assert headers[TOPIC] == "m.json"
        headers, body = dead["plain-text"]
        assert body == b'{"a": 1}'
        assert headers[failure.MESSAGE] == ("unsupported content type 'text/plain' (expected JSON)")

        assert worker.consuming.is_set()
        later = publisher.publish("m.after", 2)
        assert [e.id for e in got.wait_for(2)] == [good_id, later]
    assert [e.topic for e in got.events] == ["m.good", "m.after"]  # never the malformed ones


def test_a_plain_amqp_json_message_without_hubbub_headers_is_handled(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(subscribers(hub_name, s=["order.*"]))
    got = Recorder()
    run_worker(topology, {"s": got})
    with channel(broker_url) as ch:
        ch.confirm_delivery()
        ch.basic_publish(hub_name, "order.placed", b'{"order": 7}')
        props = pika.BasicProperties(message_id="m-1", headers={"x-request-id": "r-1"})
        ch.basic_publish(hub_name, "order.paid", b"[1, 2]", props)
    first, second = sorted(got.wait_for(2), key=lambda e: e.topic, reverse=True)
    assert (first.topic, first.data, first.attempt) == ("order.placed", {"order": 7}, 1)
    assert first.id.startswith("amqp-")
    assert first.headers == {}
    assert (second.topic, second.data, second.id) == ("order.paid", [1, 2], "m-1")
    assert second.headers == {"x-request-id": "r-1"}
    wait_until(lambda: depth(broker_url, f"{hub_name}.s") == 0, 5, "both are acked")
    assert depth(broker_url, f"{hub_name}.s.dlq") == 0


def test_competing_consumers_share_a_queue_and_handle_each_event_once(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(subscribers(hub_name, s=["work"]))
    first, second = Recorder(), Recorder()
    run_worker(topology, {"s": first}, prefetch=10, name=f"{hub_name} one")
    run_worker(topology, {"s": second}, prefetch=10, name=f"{hub_name} two")
    count = 200
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = publisher.publish_many(OutgoingEvent("work", {"i": i}) for i in range(count))
    wait_until(
        lambda: len(first.events) + len(second.events) >= count, 20, "every event is handled"
    )
    wait_until(lambda: depth(broker_url, f"{hub_name}.s") == 0, 5, "the queue is drained")
    handled = [e.id for e in first.events + second.events]
    assert sorted(handled) == sorted(ids)  # each exactly once
    assert first.events and second.events  # both workers took a share


def test_each_subscriber_of_a_process_consumes_on_its_own_channel(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(subscribers(hub_name, a=["a.#"], b=["b.#"], c=["#"]))
    got = {name: Recorder() for name in "abc"}
    run_worker(topology, got, name=f"{hub_name} several")
    queues = {f"{hub_name}.{name}" for name in "abc"}
    found = wait_until(
        # channel_details stays [] until the broker's stats catch up with a new channel
        lambda: (
            (found := consumers_of(broker_url, queues))
            and len(found) == 3
            and all(isinstance(c["channel_details"], dict) for c in found)
            and found
        ),
        15,
        "the management API lists the three consumers",
    )
    assert {c["queue"]["name"] for c in found} == queues
    assert len({c["channel_details"]["connection_name"] for c in found}) == 1  # one process
    assert len({c["channel_details"]["number"] for c in found}) == 3  # three channels
    assert {c["prefetch_count"] for c in found} == {50}

    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("a.1", None)
        publisher.publish("b.1", None)
    assert [e.topic for e in got["a"].wait_for(1)] == ["a.1"]
    assert [e.topic for e in got["b"].wait_for(1)] == ["b.1"]
    assert sorted(e.topic for e in got["c"].wait_for(2)) == ["a.1", "b.1"]
    assert all(e.subscriber == name for name, r in got.items() for e in r.events)


def test_an_event_whose_dead_letter_copy_is_not_confirmed_stays_queued(
    declare, run_worker, hub_name, broker_url
):
    """The original is acked only on the copy's confirm: a refused copy leaves it queued."""
    spec = {"handler": "x:y", "topics": ["t"], "retry": {"attempts": 1}, "delivery_limit": 1000}
    topology = declare({"hub": hub_name, "subscribers": {"s": spec}})
    calls: list[str] = []

    def always_fails(event):
        calls.append(event.id)
        raise ValueError("boom")

    worker = run_worker(topology, {"s": always_fails})  # checks the exchanges at start
    with channel(broker_url) as ch:  # the copy's exchange is gone: the broker refuses it (404)
        ch.exchange_delete(f"{hub_name}.dlx")
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("t", {"n": 1})
    wait_until(lambda: len(calls) >= 3, 15, "the event is redelivered after refused copies")
    worker.stop()
    wait_until(lambda: not worker.consuming.is_set(), 15, "the worker stops")
    wait_until(lambda: depth(broker_url, f"{hub_name}.s") == 1, 15, "the event is back")
    assert set(calls) == {event_id}
    assert depth(broker_url, f"{hub_name}.s.dlq") == 0
