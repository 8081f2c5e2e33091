"""The kombu integration against the real broker: publishing, declaring, Celery."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time

import kombu
import pika
import pytest

from hubbub.errors import BrokerConnectionError, DeclarationError, PublishError
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.producers.kombu import KombuPublisher
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import loader, make_plan
from hubbub.topology.kombu import declare as kombu_declare

pytestmark = pytest.mark.integration

CONFIRMS = {"confirm_publish": True}


def _spec(hub: str, **subscriber: object) -> dict:
    welcome = {"handler": "x:y", "topics": ["user.signed_up"], **subscriber}
    return {"hub": hub, "subscribers": {"welcome": welcome}}


class Inbox:
    """Collects handled events; ``wait`` polls until ``count`` arrived or the deadline."""

    def __init__(self) -> None:
        self.events: list = []
        self.arrived: dict[str, float] = {}  # event id -> time.monotonic() on arrival
        self._cond = threading.Condition()

    def __call__(self, event) -> None:
        with self._cond:
            self.events.append(event)
            self.arrived[event.id] = time.monotonic()
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 15) -> list:
        with self._cond:
            self._cond.wait_for(lambda: len(self.events) >= count, timeout)
            assert len(self.events) >= count, f"{len(self.events)} of {count} events arrived"
            return list(self.events)


# -- publishing ---------------------------------------------------------------


def test_kombu_and_pika_publishers_send_the_same_event(declare, run_worker, hub_name, broker_url):
    topology = declare(_spec(hub_name))
    inbox = Inbox()
    run_worker(topology, {"welcome": inbox})
    data = {"user_id": 1, "name": "Alice"}
    with KombuPublisher.from_url(hub_name, broker_url) as kp:
        kombu_id = kp.publish("user.signed_up", data, headers={"source": "kombu"})
    with Publisher(hub_name, url=broker_url) as pp:
        pika_id = pp.publish("user.signed_up", data, headers={"source": "kombu"})
    by_id = {e.id: e for e in inbox.wait(2)}
    k, p = by_id[kombu_id], by_id[pika_id]
    assert (k.topic, k.data, k.headers, k.attempt, k.delay) == (
        "user.signed_up",
        data,
        {"source": "kombu"},
        1,
        None,
    )
    assert (k.topic, k.data, k.headers, k.attempt, k.delay) == (
        p.topic,
        p.data,
        p.headers,
        p.attempt,
        p.delay,
    )
    assert k.correlation_id == kombu_id and p.correlation_id == pika_id


def test_pool_publishes_from_many_threads(declare, run_worker, hub_name, broker_url):
    topology = declare(_spec(hub_name))
    inbox = Inbox()
    run_worker(topology, {"welcome": inbox})
    connection = kombu.Connection(broker_url, transport_options=CONFIRMS)
    pool = connection.Pool(limit=2)
    publisher = KombuPublisher(hub_name, pool)
    ids: list[str] = []

    def publish_some(n: int) -> None:
        for i in range(10):
            ids.append(publisher.publish("user.signed_up", {"thread": n, "i": i}))

    threads = [threading.Thread(target=publish_some, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    pool.force_close_all()
    assert len(ids) == 40
    assert {e.id for e in inbox.wait(40)} == set(ids)


def test_publish_many_and_a_delay_through_the_ladder(declare, run_worker, hub_name, broker_url):
    topology = declare(_spec(hub_name))
    inbox = Inbox()
    run_worker(topology, {"welcome": inbox})
    with KombuPublisher.from_url(hub_name, broker_url) as publisher:
        started = time.monotonic()
        delayed_id = publisher.publish("user.signed_up", {"late": True}, delay=1)
        ids = publisher.publish_many(OutgoingEvent("user.signed_up", {"n": n}) for n in range(3))
        events = inbox.wait(4)
    late = next(e for e in events if e.id == delayed_id)
    assert [e.id for e in events[:3]] == ids  # the undelayed ones came first, in order
    assert late.delay == 1.0 and late.topic == "user.signed_up" and late.data == {"late": True}
    assert 1.0 <= inbox.arrived[delayed_id] - started < 10


def test_kombu_publishes_an_event_under_several_topics(declare, run_worker, hub_name, broker_url):
    spec = _spec(hub_name)
    spec["subscribers"]["crm"] = {"handler": "x:y", "topics": ["crm.#", "user.*"]}
    topology = declare(spec)
    welcome, crm = Inbox(), Inbox()
    run_worker(topology, {"welcome": welcome, "crm": crm})
    with KombuPublisher.from_url(hub_name, broker_url) as publisher:
        now = publisher.publish(["user.signed_up", "crm.lead"], {"n": 1})
        later = publisher.publish(["crm.lead", "user.signed_up"], {"n": 2}, delay=1)
    assert [e.id for e in welcome.wait(2)] == [now, later]
    events = crm.wait(2)
    time.sleep(0.5)  # a second copy would have come by now
    assert [e.id for e in crm.events] == [now, later]  # one copy each, both patterns matching
    assert [e.topics for e in events] == [
        ("user.signed_up", "crm.lead"),
        ("crm.lead", "user.signed_up"),
    ]
    assert [e.matched for e in welcome.events] == [("user.signed_up",)] * 2


def test_an_event_no_subscriber_matches_is_parked(declare, hub_name, broker_url):
    topology = declare(_spec(hub_name))
    with KombuPublisher.from_url(hub_name, broker_url) as publisher:
        event_id = publisher.publish("nobody.listens", {"x": 1})
    props, body = _get_one(broker_url, topology.names.unrouted)
    assert (props.message_id, props.type, props.delivery_mode, body) == (
        event_id,
        "nobody.listens",
        2,
        b'{"x":1}',
    )


def test_errors_are_hubbubs(hub_name, broker_url):
    with (
        KombuPublisher.from_url(hub_name, broker_url) as publisher,
        pytest.raises(PublishError, match="does not exist on the broker: apply"),
    ):
        publisher.publish("user.signed_up", {})  # the hub was never declared
    wrong = broker_url.replace("guest:guest@", "guest:s3cret@")
    with pytest.raises(BrokerConnectionError, match="refused the credentials") as caught:
        KombuPublisher.from_url(hub_name, wrong).publish("user.signed_up")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_from_url_fails_over_to_the_next_url(declare, hub_name, broker_url):
    topology = declare(_spec(hub_name))
    dead = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens on port 1
    with KombuPublisher.from_url(hub_name, f"{dead},{broker_url}") as publisher:
        event_id = publisher.publish("nobody.listens", {})
    assert _get_one(broker_url, topology.names.unrouted)[0].message_id == event_id


def test_a_lost_connection_is_reopened_by_the_next_publish(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(_spec(hub_name))
    inbox = Inbox()
    run_worker(topology, {"welcome": inbox})
    connection = kombu.Connection(broker_url, transport_options=CONFIRMS)
    publisher = KombuPublisher(hub_name, connection)
    publisher.publish("user.signed_up", {"n": 1})
    _cut(connection)
    with pytest.raises(PublishError, match="lost before the broker confirmed"):
        publisher.publish("user.signed_up", {"n": 2})
    last = publisher.publish("user.signed_up", {"n": 3})
    assert last in {e.id for e in inbox.wait(2)}
    connection.close()


# -- declaring ----------------------------------------------------------------


def test_kombu_declares_what_apply_declares(hub_name, broker_url):
    topology = loader.from_mapping(
        _spec(hub_name, topics=["user.signed_up", "billing.#"], delivery_limit=7)
    )
    try:
        assert not make_plan(topology, [broker_url]).empty  # nothing there yet
        with kombu.Connection(broker_url) as connection:
            kombu_declare(connection, topology)
        assert make_plan(topology, [broker_url]).changes == ()
    finally:
        delete_hub(broker_url, topology)


def test_kombu_redeclares_an_applied_topology(declare, hub_name, broker_url):
    topology = declare(_spec(hub_name))
    with kombu.Connection(broker_url) as connection:
        kombu_declare(connection, topology)  # no PRECONDITION_FAILED
    assert make_plan(topology, [broker_url]).changes == ()
    changed = loader.from_mapping(_spec(hub_name, delivery_limit=3))
    with (
        kombu.Connection(broker_url) as connection,
        pytest.raises(
            DeclarationError, match=re.escape(f"queue '{hub_name}.welcome' already exists with x-")
        ),
    ):
        kombu_declare(connection, changed)


# -- Celery -------------------------------------------------------------------


def test_a_celery_task_publishes_to_a_hubbub_subscriber(declare, run_worker, hub_name, broker_url):
    topology = declare(_spec(hub_name))
    inbox = Inbox()
    run_worker(topology, {"welcome": inbox})
    queue = unique_name("t-celery")
    env = {
        **os.environ,
        "HUBBUB_URL": broker_url,
        "HUBBUB_HUB": hub_name,
        "EXAMPLE_CELERY_QUEUE": queue,
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "example_app.celery_app",
            "worker",
            "--pool=solo",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=WARNING",
            "-Q",
            queue,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        from example_app.celery_app import sign_up

        result = sign_up.apply_async((7, "Ann", "ann@example.com"), queue=queue)
        events = inbox.wait(1, timeout=30)
    finally:
        # The task is done once its event arrived. Killed, not SIGTERM: with
        # confirm_publish on, Celery's warm shutdown idles up to 10 s in its
        # event loop's poll before it notices the signal.
        worker.kill()
        output = worker.communicate(timeout=30)[0].decode()
        _delete_celery_queue(broker_url, queue)
    assert (events[0].id, events[0].topic, events[0].data) == (
        result.id,
        "user.signed_up",
        {"user_id": 7, "name": "Ann", "email": "ann@example.com"},
    ), output


# -- helpers ------------------------------------------------------------------


def _get_one(url: str, queue: str, timeout: float = 10) -> tuple[pika.BasicProperties, bytes]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return props, body
            time.sleep(0.05)
        raise AssertionError(f"nothing arrived in {queue} within {timeout} s")
    finally:
        connection.close()


def _cut(connection: kombu.Connection) -> None:
    """Cut the TCP connection under kombu's feet, as a network failure would."""
    connection.connection.sock.shutdown(socket.SHUT_RDWR)


def _delete_celery_queue(url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
    finally:
        connection.close()
