"""The BrokerSession contract, method by method, against the real broker.

What topology and admin code rely on (hubbub/transport/session.py): a
refused operation raises hubbub's error and leaves the session usable, a
missing queue counts as None, a reader holds what it received until it acks
or releases it, and nothing the client library defines crosses the seam.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pika
import pytest
from core_support import channel, depth

from hubbub.errors import BrokerConnectionError
from hubbub.message import Delivery, Message
from hubbub.testing.broker import unique_name
from hubbub.testing.vhosts import VhostAdmin
from hubbub.transport import (
    AccessRefusedError,
    BrokerSession,
    ConnectionLostError,
    NotFoundError,
    PreconditionFailedError,
    QueueCounts,
    open_session,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def session(broker_url: str) -> Iterator[BrokerSession]:
    opened = open_session([broker_url], name="hubbub test session")
    yield opened
    opened.close()


@pytest.fixture
def names(broker_url: str) -> Iterator[list[str]]:
    """Unique names; the queues and exchanges they name are deleted afterwards."""
    made: list[str] = []
    yield made
    with channel(broker_url) as ch:
        for name in made:
            ch.queue_delete(name)
            ch.exchange_delete(name)


def fresh(names: list[str], prefix: str) -> str:
    names.append(unique_name(prefix))
    return names[-1]


def publish(url: str, exchange: str, key: str, *bodies: bytes) -> None:
    with channel(url) as ch:
        ch.confirm_delivery()
        for body in bodies:
            ch.basic_publish(exchange, key, body, pika.BasicProperties(delivery_mode=2))


def test_declares_are_idempotent_and_counts_read_ready_messages_and_consumers(
    session, names, broker_url
):
    queue = fresh(names, "t-session-q")
    session.declare_queue(queue, arguments={"x-queue-type": "quorum"})
    session.declare_queue(queue, arguments={"x-queue-type": "quorum"})  # as asked: no change
    publish(broker_url, "", queue, b"a", b"b")
    assert session.queue_counts(queue) == QueueCounts(ready=2, consumers=0)
    assert session.server_version and re.match(r"\d+\.\d+", session.server_version)


def test_a_missing_queue_or_exchange_reads_as_absent_and_the_session_goes_on(session, names):
    assert session.queue_counts(unique_name("t-session-none")) is None
    assert session.exchange_exists(unique_name("t-session-none")) is False
    queue, exchange = fresh(names, "t-session-q"), fresh(names, "t-session-x")
    session.declare_queue(queue)
    session.declare_exchange(exchange, "topic")
    assert session.queue_counts(queue) == QueueCounts(0, 0)
    assert session.exchange_exists(exchange) is True


def test_a_conflicting_redeclare_names_the_argument_and_the_session_goes_on(session, names):
    queue = fresh(names, "t-session-q")
    session.declare_queue(queue, arguments={"x-message-ttl": 1000})
    with pytest.raises(PreconditionFailedError) as refused:
        session.declare_queue(queue, arguments={"x-message-ttl": 2000})
    assert (refused.value.code, refused.value.argument) == (406, "x-message-ttl")
    assert isinstance(refused.value, BrokerConnectionError)  # in hubbub's error tree
    assert session.queue_counts(queue) == QueueCounts(0, 0)


def test_binding_queues_and_exchanges_routes_and_unbinding_stops_it(session, names, broker_url):
    source, middle, queue = (fresh(names, f"t-session-{n}") for n in ("src", "mid", "q"))
    session.declare_exchange(source, "topic")
    session.declare_exchange(middle, "topic")
    session.declare_queue(queue)
    session.bind_exchange(middle, source, "a.#")
    session.bind_queue(queue, middle, "a.b")
    publish(broker_url, source, "a.b", b"1")
    assert depth(broker_url, queue) == 1
    session.unbind_queue(queue, middle, "a.b")
    publish(broker_url, source, "a.b", b"2")
    session.bind_queue(queue, source, "c")
    session.unbind_exchange(middle, source, "a.#")
    publish(broker_url, source, "c", b"3")
    assert depth(broker_url, queue) == 2  # "2" found no binding any more


def test_binding_to_a_missing_exchange_is_not_found(session, names):
    queue = fresh(names, "t-session-q")
    session.declare_queue(queue)
    with pytest.raises(NotFoundError) as refused:
        session.bind_queue(queue, unique_name("t-session-none"), "k")
    assert refused.value.code == 404 and "cannot bind queue" in str(refused.value)
    assert session.queue_counts(queue) is not None


def test_deleting_removes_and_a_missing_object_is_no_error(session, names):
    queue, exchange = fresh(names, "t-session-q"), fresh(names, "t-session-x")
    session.declare_queue(queue)
    session.declare_exchange(exchange, "direct")
    session.delete_queue(queue)
    session.delete_exchange(exchange)
    assert session.queue_counts(queue) is None and not session.exchange_exists(exchange)
    session.delete_queue(queue)
    session.delete_exchange(exchange)


def test_a_reader_holds_what_it_received_until_acked_or_released(session, names, broker_url):
    queue = fresh(names, "t-session-q")
    session.declare_queue(queue, arguments={"x-queue-type": "quorum"})
    publish(broker_url, "", queue, b"0", b"1", b"2", b"3")
    reader = session.reader()
    reader.consume(queue, credit=3, tag="c0")
    got: list[tuple[str, Delivery]] = []
    for _ in range(100):
        session.pump(0.05)
        got += reader.received()
        if len(got) == 3:
            break
    assert [(tag, d.message.body) for tag, d in got] == [("c0", b"0"), ("c0", b"1"), ("c0", b"2")]
    assert isinstance(got[0][1].message, Message) and got[0][1].message.delivery_mode == 2
    session.pump(0.2)
    assert reader.received() == []  # the credit caps it: "3" was not sent
    reader.cancel("c0")
    reader.ack(got[0][1].tag)
    reader.release(timeout=5)
    assert not reader.is_open
    for _ in range(100):  # the broker gives back shortly after the close
        if (session.queue_counts(queue) or QueueCounts(0, 0)).ready == 3:
            break
        session.pump(0.05)
    assert session.queue_counts(queue) == QueueCounts(3, 0)  # "0" acked, the rest given back
    again = session.reader()
    again.consume(queue, credit=10, tag="c1")
    bodies: list[bytes] = []
    for _ in range(100):
        session.pump(0.05)
        bodies += [d.message.body for _, d in again.received()]
        if len(bodies) == 3:
            break
    assert bodies == [b"1", b"2", b"3"]  # in queue order
    again.release(timeout=5)


@pytest.fixture
def locked_out(broker_url: str) -> Iterator[str]:
    """A URL for a user with no permission at all in a vhost of its own (removed after)."""
    api = VhostAdmin(broker_url)
    vhost, user = unique_name("hubbub-session"), unique_name("nobody")
    api.create(vhost, "guest")
    api._send("PUT", f"users/{quote(user, safe='')}", {"password": "pw", "tags": ""})
    path = f"permissions/{quote(vhost, safe='')}/{quote(user, safe='')}"
    api._send("PUT", path, {"configure": "^$", "write": "^$", "read": "^$"})
    host = urlsplit(broker_url)
    try:
        yield f"amqp://{user}:pw@{host.hostname}:{host.port or 5672}/{quote(vhost, safe='')}"
    finally:
        api.delete(vhost)
        api._send("DELETE", f"users/{quote(user, safe='')}", None, missing_ok=True)


def test_a_refused_permission_says_which_and_the_session_goes_on(locked_out):
    session = open_session([locked_out], name="hubbub test session (refused)")
    try:
        with pytest.raises(AccessRefusedError) as refused:
            session.declare_queue("t-session-forbidden")
        error = refused.value
        assert (error.code, error.permission, error.kind, error.name) == (
            403,
            "configure",
            "queue",
            "t-session-forbidden",
        )
        assert str(error).startswith(f"user {error.user!r} lacks configure permission on queue")
        assert "403 ACCESS_REFUSED" in str(error) and "set_permissions" in str(error)
        assert session.queue_counts("t-session-forbidden") is None  # a passive declare needs none
    finally:
        session.close()


def test_a_closed_session_raises_connection_lost(broker_url):
    session = open_session([broker_url], name="hubbub test session (closed)")
    session.close()
    session.close()  # idempotent
    assert not session.is_open
    with pytest.raises(ConnectionLostError):
        session.queue_counts("anything")


@pytest.mark.same_on_every_version(reason="no broker: nothing listens on the port it connects to")
def test_an_unreachable_broker_is_one_clear_error():
    with pytest.raises(BrokerConnectionError, match="cannot connect to the broker"):
        open_session(["amqp://guest:guest@127.0.0.1:1/%2F"], name="hubbub test session")
