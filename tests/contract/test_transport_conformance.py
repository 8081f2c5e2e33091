"""One conformance suite for every transport: the contracts of hubbub.transport.base.

Each test runs on the in-memory transport and on the RabbitMQ one (in a
vhost of its own; marked integration), through a small kit that drives a
consumer the way each runs: the in-memory consumer's ``run`` on the test's
thread until it is idle, the RabbitMQ one's on a thread of its own until
the test's condition holds. What is checked is the protocol alone:

- publishing: every Pending is settled exactly once (a confirm, or a
  failure saying why: no such exchange, no queue for a mandatory message);
  a withdrawn message is not sent; a closed transport reconnects on the next send;
- consuming: an ack removes a delivery, a requeue redelivers it (marked
  redelivered), the prefetch bounds what is held, a lost connection is a
  new epoch (held deliveries come back; a settlement of the old epoch is
  dropped), ``close`` gives back what is held and ends ``run``, callbacks
  run on the transport's thread (``call_soon``, ``call_later``), a queue
  that does not exist is fatal, and a copy exchange that does not exist is
  refused before consuming.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Protocol
from urllib.parse import quote

import pytest

from hubbub.connection import vhost_of
from hubbub.errors import HubbubError, PublishError
from hubbub.message import Delivery, Message, Outbound
from hubbub.testing.broker import unique_name
from hubbub.testing.clock import FakeClock
from hubbub.topology import loader
from hubbub.topology.model import Topology
from hubbub.topology.observe import ManagementAPI
from hubbub.transport import open_session
from hubbub.transport.base import (
    ACK,
    REQUEUE,
    ConsumerTransport,
    Pending,
    Subscription,
    Transport,
)
from hubbub.transport.confirms import ConfirmGroup
from hubbub.transport.errors import CopyTargetError
from hubbub.transport.memory import MemoryConsumerTransport, MemoryTransport

#: Seconds a RabbitMQ consumer gets to reach a test's condition.
WITHIN = 15.0
#: Seconds to watch that nothing more happens (RabbitMQ; memory is idle at once).
QUIET = 0.3

TOPOLOGY: Topology = loader.from_mapping(
    {"hub": "conformance", "subscribers": {"work": {"handler": "app:work", "topics": ["a.#"]}}}
)
QUEUE = TOPOLOGY.names.queue("work")

OnDelivery = Callable[[Subscription, int, Delivery], None]


class Events:
    """A ConsumerEvents that logs what the transport said, and on which thread."""

    def __init__(self, on_delivery: OnDelivery | None = None) -> None:
        self.on_delivery = on_delivery
        self.log: list[tuple[str, Any]] = []
        self.deliveries: list[tuple[int, Delivery]] = []
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def connected(self, node: str) -> None:
        self._note("connected", node)

    def consuming(self, subscription: Subscription, epoch: int) -> None:
        self._note("consuming", epoch)

    def delivered(self, subscription: Subscription, epoch: int, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append((epoch, delivery))
        self._note("delivered", delivery.message.body)
        if self.on_delivery is not None:
            self.on_delivery(subscription, epoch, delivery)

    def disconnected(self) -> None:
        self._note("disconnected", None)

    def said(self, what: str) -> list[Any]:
        with self._lock:
            return [detail for name, detail in self.log if name == what]

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [d.message.body for _, d in self.deliveries]

    def _note(self, what: str, detail: Any) -> None:
        with self._lock:
            self.log.append((what, detail))
            self.threads.add(threading.get_ident())


class Kit(Protocol):
    """A transport under test, and how the suite drives and inspects it."""

    transport: Transport

    def pump(
        self,
        consumer: ConsumerTransport,
        subscriptions: Sequence[Subscription],
        events: Events,
        until: Callable[[], bool],
    ) -> None:
        """Let ``consumer`` run until ``until()`` holds (AssertionError if it never does)."""
        ...

    def quiet(self) -> None:
        """Give the transport time to do what it should not (no-op in memory)."""
        ...

    def stop(self, consumer: ConsumerTransport) -> None:
        """Close ``consumer`` and wait for its ``run`` to return."""
        ...

    def interrupt(self, consumer: ConsumerTransport) -> None:
        """Cut ``consumer``'s connection as a network failure would."""
        ...

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the transport's clock."""
        ...

    def ready(self) -> int:
        """Messages ready in the work queue."""
        ...

    def put(self, *bodies: bytes) -> None:
        """Store ``bodies`` in the work queue, past the transports under test."""
        ...


class MemoryKit:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.transport = MemoryTransport(self.clock.time)

    def pump(
        self,
        consumer: ConsumerTransport,
        subscriptions: Sequence[Subscription],
        events: Events,
        until: Callable[[], bool],
    ) -> None:
        consumer.run(subscriptions, events)
        assert until(), f"idle without it; the transport said {events.log}"

    def quiet(self) -> None:
        """Memory is idle when ``run`` returns."""

    def stop(self, consumer: ConsumerTransport) -> None:
        consumer.close()

    def interrupt(self, consumer: ConsumerTransport) -> None:
        assert isinstance(consumer, MemoryConsumerTransport)
        consumer.interrupt()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def ready(self) -> int:
        return len(self.transport.broker.messages(QUEUE))

    def put(self, *bodies: bytes) -> None:
        for body in bodies:
            self.transport.broker.publish(Outbound("", QUEUE, Message(body)))


class RabbitMQKit:
    def __init__(self, url: str) -> None:
        from hubbub.transport.rabbitmq import RabbitMQTransport

        self.url = url
        self.transport = RabbitMQTransport(url)
        self._threads: dict[int, threading.Thread] = {}
        self._errors: list[BaseException] = []

    def pump(
        self,
        consumer: ConsumerTransport,
        subscriptions: Sequence[Subscription],
        events: Events,
        until: Callable[[], bool],
    ) -> None:
        if id(consumer) not in self._threads:
            thread = threading.Thread(target=self._run, args=(consumer, subscriptions, events))
            self._threads[id(consumer)] = thread
            thread.start()
        deadline = time.monotonic() + WITHIN
        while not until():
            assert not self._errors, f"run raised {self._errors[0]!r}"
            assert time.monotonic() < deadline, f"not within {WITHIN}s; said {events.log}"
            time.sleep(0.01)

    def quiet(self) -> None:
        time.sleep(QUIET)

    def stop(self, consumer: ConsumerTransport) -> None:
        consumer.close()
        thread = self._threads.pop(id(consumer), None)
        if thread is not None:
            thread.join(WITHIN)
            assert not thread.is_alive(), "run did not return after close"

    def interrupt(self, consumer: ConsumerTransport) -> None:
        """Close the consumer's connections through the management API (on another thread:
        the caller may be the transport's own)."""
        threading.Thread(target=self._close_connections).start()

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)

    def ready(self) -> int:
        session = open_session([self.url], name="conformance count")
        try:
            counts = session.queue_counts(QUEUE)
        finally:
            session.close()
        assert counts is not None
        return counts.ready

    def put(self, *bodies: bytes) -> None:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            for body in bodies:
                channel.basic_publish("", QUEUE, body)
        finally:
            connection.close()

    def stop_all(self) -> None:
        for thread in self._threads.values():
            thread.join(WITHIN)

    def _run(
        self, consumer: ConsumerTransport, subscriptions: Sequence[Subscription], events: Events
    ) -> None:
        try:
            consumer.run(subscriptions, events)
        except BaseException as exc:
            self._errors.append(exc)

    def _close_connections(self) -> None:
        """Close this test's consumer connections (its vhost's only), once the API lists them."""
        api = ManagementAPI(self.url)
        vhost = vhost_of(self.url)
        deadline = time.monotonic() + WITHIN
        while time.monotonic() < deadline:
            closed = 0
            for connection in api.get("connections"):
                label = (connection.get("client_properties") or {}).get("connection_name") or ""
                if connection.get("vhost") == vhost and label.startswith("conformance consumer"):
                    request = urllib.request.Request(
                        f"{api.base}/api/connections/{quote(connection['name'], safe='')}",
                        method="DELETE",
                        headers={"Authorization": api._auth},
                    )
                    urllib.request.urlopen(request, timeout=10).close()
                    closed += 1
            if closed:
                return
            time.sleep(0.5)  # the API lists a connection once its stats came in


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    made: Kit
    if request.param == "memory":
        made = MemoryKit()
    else:
        made = RabbitMQKit(request.getfixturevalue("hubbub_vhost_url"))
    made.transport.apply(TOPOLOGY)
    yield made
    if isinstance(made, RabbitMQKit):
        made.stop_all()


def consumer_of(kit: Kit) -> ConsumerTransport:
    return kit.transport.consumer(name=unique_name("conformance consumer"))


WORK = Subscription(index=0, queue=QUEUE, prefetch=10)


# -- publishing ---------------------------------------------------------------------------


def test_every_pending_is_confirmed_once_with_a_future_or_in_a_group(kit: Kit) -> None:
    publisher = kit.transport.publisher(name="conformance publisher")
    group = ConfirmGroup(2)
    pending = [
        Pending(Outbound("", QUEUE, Message(b"one")), Future()),
        Pending(Outbound("", QUEUE, Message(b"two")), group=group, index=0),
        Pending(Outbound("", QUEUE, Message(b"three")), group=group, index=1),
        Pending(Outbound("", QUEUE, Message(b"four"))),  # nobody waits
    ]
    publisher.send_many(pending)
    assert pending[0].future is not None
    assert pending[0].future.result(timeout=WITHIN) is None
    assert group.wait(WITHIN)
    assert group.failed == []
    publisher.close()
    assert all(p.settled for p in pending)
    assert kit.ready() == 4
    assert not publisher.live


def test_a_message_to_a_missing_exchange_fails_and_the_transport_goes_on(kit: Kit) -> None:
    publisher = kit.transport.publisher(name="conformance publisher")
    lost = Pending(Outbound("no-such-exchange", "a.b", Message(b"lost")), Future())
    publisher.send_many([lost])
    assert lost.future is not None
    error = lost.future.exception(timeout=WITHIN)
    assert isinstance(error, PublishError)
    assert "does not exist" in str(error)
    kept = Pending(Outbound("", QUEUE, Message(b"kept")), Future())
    publisher.send_many([kept])
    assert kept.future is not None
    assert kept.future.result(timeout=WITHIN) is None
    publisher.close()
    assert kit.ready() == 1


def test_a_mandatory_message_no_queue_takes_fails(kit: Kit) -> None:
    publisher = kit.transport.publisher(name="conformance publisher")
    returned = Pending(Outbound("", "no-such-queue", Message(b"x"), mandatory=True), Future())
    publisher.send_many([returned])
    assert returned.future is not None
    error = returned.future.exception(timeout=WITHIN)
    assert isinstance(error, PublishError)
    assert "no-such-queue" in str(error)
    publisher.close()


def test_a_withdrawn_message_is_not_sent(kit: Kit) -> None:
    publisher = kit.transport.publisher(name="conformance publisher")
    withdrawn = Pending(Outbound("", QUEUE, Message(b"withdrawn")), Future())
    assert withdrawn.future is not None
    withdrawn.future.cancel()
    sent = Pending(Outbound("", QUEUE, Message(b"sent")), Future())
    publisher.send_many([withdrawn, sent])
    assert sent.future is not None
    sent.future.result(timeout=WITHIN)
    publisher.close()
    assert kit.ready() == 1


def test_a_closed_publisher_reconnects_on_the_next_send(kit: Kit) -> None:
    publisher = kit.transport.publisher(name="conformance publisher")
    publisher.connect()
    assert publisher.live
    assert publisher.blocked is None
    publisher.close()
    assert not publisher.live
    again = Pending(Outbound("", QUEUE, Message(b"again")), Future())
    publisher.send_many([again])
    assert again.future is not None
    again.future.result(timeout=WITHIN)
    assert publisher.live
    publisher.close()


# -- consuming ----------------------------------------------------------------------------


def test_acked_deliveries_are_gone_and_each_came_once(kit: Kit) -> None:
    kit.put(b"1", b"2", b"3")
    consumer = consumer_of(kit)
    events = Events(lambda sub, epoch, d: consumer.settle(sub, epoch, d.tag, ACK))
    kit.pump(consumer, [WORK], events, lambda: len(events.deliveries) == 3)
    kit.quiet()
    assert events.bodies() == [b"1", b"2", b"3"]
    assert not any(d.redelivered for _, d in events.deliveries)
    assert len({d.tag for _, d in events.deliveries}) == 3
    assert events.said("connected")
    assert events.said("consuming") == [events.deliveries[0][0]]
    kit.stop(consumer)
    assert kit.ready() == 0


def test_a_requeued_delivery_comes_again_marked_redelivered(kit: Kit) -> None:
    kit.put(b"again")
    consumer = consumer_of(kit)

    def settle(sub: Subscription, epoch: int, delivery: Delivery) -> None:
        consumer.settle(sub, epoch, delivery.tag, ACK if delivery.redelivered else REQUEUE)

    events = Events(settle)
    kit.pump(consumer, [WORK], events, lambda: len(events.deliveries) == 2)
    kit.quiet()
    (_, first), (_, second) = events.deliveries
    assert (first.redelivered, second.redelivered) == (False, True)
    assert second.message.body == b"again"
    assert consumer.outstanding() == 0
    kit.stop(consumer)
    assert kit.ready() == 0


def test_the_prefetch_bounds_what_is_held(kit: Kit) -> None:
    kit.put(b"1", b"2", b"3", b"4", b"5")
    consumer = consumer_of(kit)
    events = Events()
    narrow = Subscription(index=0, queue=QUEUE, prefetch=2)
    kit.pump(consumer, [narrow], events, lambda: len(events.deliveries) == 2)
    kit.quiet()
    assert events.bodies() == [b"1", b"2"]
    epoch, first = events.deliveries[0]
    consumer.settle(narrow, epoch, first.tag, ACK)
    kit.pump(consumer, [narrow], events, lambda: len(events.deliveries) == 3)
    kit.quiet()
    assert events.bodies() == [b"1", b"2", b"3"]
    kit.stop(consumer)
    assert kit.ready() == 4


def test_a_lost_connection_is_a_new_epoch_and_voids_the_old_one(kit: Kit) -> None:
    kit.put(b"held")
    consumer = consumer_of(kit)

    def on_delivery(sub: Subscription, epoch: int, delivery: Delivery) -> None:
        if not delivery.redelivered:
            kit.interrupt(consumer)  # held, never settled in this epoch
            return
        old_epoch, old = events.deliveries[0]
        assert epoch > old_epoch
        consumer.settle(sub, old_epoch, old.tag, ACK)  # dropped: its connection is gone
        consumer.call_soon(lambda: outstanding.append(consumer.outstanding()))
        consumer.call_soon(lambda: consumer.settle(sub, epoch, delivery.tag, ACK))
        consumer.call_soon(lambda: consumer.call_soon(lambda: outstanding.append(-1)))

    outstanding: list[int] = []
    events = Events(on_delivery)
    kit.pump(consumer, [WORK], events, lambda: -1 in outstanding)
    assert outstanding[0] == 1  # the old epoch's ack did not settle the redelivery
    assert events.bodies() == [b"held", b"held"]
    assert events.said("disconnected")
    assert len(events.said("connected")) == 2
    assert consumer.outstanding() == 0
    kit.stop(consumer)
    assert kit.ready() == 0


def test_close_gives_back_what_is_held_and_ends_run(kit: Kit) -> None:
    kit.put(b"1", b"2")
    consumer = consumer_of(kit)
    events = Events()
    kit.pump(consumer, [WORK], events, lambda: len(events.deliveries) == 2)
    kit.stop(consumer)
    assert events.said("disconnected")
    ran: list[bool] = []
    consumer.call_soon(lambda: ran.append(True))  # dropped: closed
    assert kit.ready() == 2
    again = consumer_of(kit)
    second = Events(lambda sub, epoch, d: again.settle(sub, epoch, d.tag, ACK))
    kit.pump(again, [WORK], second, lambda: len(second.deliveries) == 2)
    assert second.bodies() == [b"1", b"2"]
    assert all(d.redelivered for _, d in second.deliveries)
    kit.stop(again)
    assert not ran


def test_callbacks_run_on_the_transport_thread_soon_or_later(kit: Kit) -> None:
    kit.put(b"1")
    consumer = consumer_of(kit)
    ran: dict[str, int] = {}

    def on_delivery(sub: Subscription, epoch: int, delivery: Delivery) -> None:
        consumer.settle(sub, epoch, delivery.tag, ACK)
        consumer.call_later(1.0, lambda: ran.setdefault("later", threading.get_ident()))
        assert consumer.responsive(1.0)  # on the transport's own thread: at once

    events = Events(on_delivery)
    kit.pump(consumer, [WORK], events, lambda: bool(events.deliveries))
    consumer.call_soon(lambda: ran.setdefault("soon", threading.get_ident()))
    kit.pump(consumer, [WORK], events, lambda: "soon" in ran)
    kit.advance(1.0)
    kit.pump(consumer, [WORK], events, lambda: "later" in ran)
    assert {ran["soon"], ran["later"]} == events.threads
    kit.stop(consumer)


def test_a_queue_that_does_not_exist_is_fatal(kit: Kit) -> None:
    consumer = consumer_of(kit)
    missing = Subscription(index=0, queue="conformance.no-such-queue", prefetch=1)
    with pytest.raises(HubbubError, match="no-such-queue"):
        consumer.preflight([missing], [])  # here, or else
        consumer.run([missing], Events())
    consumer.close()


def test_a_missing_copy_exchange_is_refused_before_consuming(kit: Kit) -> None:
    consumer = consumer_of(kit)
    with pytest.raises(CopyTargetError) as refused:
        consumer.preflight([WORK], ["conformance.no-such-exchange"])
    assert refused.value.missing == ["conformance.no-such-exchange"]
    consumer.close()
