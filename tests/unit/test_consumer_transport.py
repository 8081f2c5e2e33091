"""The pika consumer transport's channel work, on a connection with no socket.

Settling (coalesced acks, requeues, void epochs) and the broker closing a
channel (a deleted queue, the consumer_timeout) are checked on the frames the
transport writes, without a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pika.exceptions as pe
from pika import frame, spec
from socketless import SocketlessConnection

from hubbub.message import Delivery
from hubbub.transport.base import ACK, REQUEUE, Subscription
from hubbub.transport.pika.consumer import (
    PikaConsumerTransport,
    _Consumer,
    _OnMessage,
    consumer_timeout,
)

URL = "amqp://guest:guest@127.0.0.1:1/%2F"  # never connected to
SUB = Subscription(0, "hub.mail", 10, 60.0)


class Events:
    """Records what the transport tells its worker."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[int, int]] = []

    def connected(self, node: str) -> None: ...
    def consuming(self, subscription: Subscription, epoch: int) -> None: ...
    def disconnected(self) -> None: ...

    def delivered(self, subscription: Subscription, epoch: int, delivery: Delivery) -> None:
        self.deliveries.append((epoch, delivery.tag))


def transport_on(connection: SocketlessConnection) -> tuple[PikaConsumerTransport, list]:
    """A transport whose current connection is ``connection``, consuming SUB in epoch 1."""
    transport = PikaConsumerTransport([URL], name="test")
    posted: list[Callable[[], None]] = []
    transport.call_soon = posted.append  # type: ignore[method-assign]
    transport._supervisor.connection = connection  # type: ignore[assignment]
    transport._epoch = 1
    events = Events()
    transport._events = events
    channel = connection.open_channel(1)
    transport._consumers = [_Consumer(SUB, channel=channel, consumer_tag="ctag", consumed=True)]
    for tag in (1, 2, 3, 4):
        method = spec.Basic.Deliver("ctag", tag, False, "hub", "user.x")
        properties = spec.BasicProperties()
        on_message = _OnMessage(transport._on_message, transport._consumers[0], 1)
        on_message(channel, method, properties, b"{}")
    assert events.deliveries == [(1, 1), (1, 2), (1, 3), (1, 4)]
    return transport, posted


def methods(written: list[bytes]) -> list[tuple[str, int, bool]]:
    data, found = b"".join(written), []
    while data:
        used, value = frame.decode_frame(data)
        data = data[used:]
        method = value.method
        found.append((type(method).__name__, method.delivery_tag, method.multiple))
    return found


def test_settlements_are_coalesced_into_one_wake_up_and_one_write():
    connection = SocketlessConnection()
    transport, posted = transport_on(connection)
    assert transport.outstanding() == 4
    transport.settle(SUB, 1, 1, ACK)
    transport.settle(SUB, 1, 2, REQUEUE)
    transport.settle(SUB, 1, 3, ACK)
    assert len(posted) == 1  # one wake-up for the batch
    connection.written.clear()
    posted.pop()()
    assert methods(connection.written) == [("Nack", 2, False), ("Ack", 3, True)]
    assert len(connection.written) == 2  # the nack, then every ack in one write
    assert transport.outstanding() == 1  # tag 4 still held


def test_a_settlement_of_an_older_epoch_is_dropped():
    connection = SocketlessConnection()
    transport, posted = transport_on(connection)
    transport.settle(SUB, 0, 1, ACK)  # delivered on the connection before
    connection.written.clear()
    posted.pop()()
    assert connection.written == []
    assert transport.outstanding() == 4


def test_a_queue_deleted_while_consumed_is_fatal_and_says_so():
    connection = SocketlessConnection()
    transport, _ = transport_on(connection)
    consumer = transport._consumers[0]
    transport._on_channel_closed(consumer, pe.ChannelClosedByBroker(404, "NOT_FOUND - no queue"))
    assert transport._supervisor._fatal is not None
    assert str(transport._supervisor._fatal).startswith(
        "queue 'hub.mail' was deleted while consuming from it"
    )
    transport, _ = transport_on(SocketlessConnection())
    never = _Consumer(SUB)  # the passive declare of its first channel failed
    transport._on_channel_closed(never, pe.ChannelClosedByBroker(404, "NOT_FOUND - no queue"))
    assert str(transport._supervisor._fatal) == (
        "queue 'hub.mail' does not exist: run 'hubbub topology apply' first"
    )


def test_the_brokers_consumer_timeout_is_explained_with_the_time_limit(caplog):
    connection = SocketlessConnection()
    transport, _ = transport_on(connection)
    reply = (
        "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. "
        "Timeout value used: 3000 ms. This timeout value can be configured, see consumers "
        "doc guide to learn more"
    )
    reason = pe.ChannelClosedByBroker(406, reply)
    assert consumer_timeout(reason)
    assert not consumer_timeout(pe.ChannelClosedByBroker(406, "PRECONDITION_FAILED - other"))
    with caplog.at_level(logging.ERROR, logger="hubbub.consumers"):
        transport._on_channel_closed(transport._consumers[0], reason)
    [line] = [r.getMessage() for r in caplog.records if "consumer_timeout" in r.getMessage()]
    assert "keep the subscriber's timeout (1m)" in line
    assert transport._supervisor._fatal is None  # it reconnects


def test_close_before_any_connection_ends_run_without_connecting():
    transport = PikaConsumerTransport([URL], name="test")
    transport.close()
    transport.run([SUB], Events())  # type: ignore[arg-type]
    assert not transport.responsive(0.01)


def test_after_cancel_a_channel_opening_late_does_not_consume():
    connection = SocketlessConnection()
    transport, _ = transport_on(connection)
    transport.cancel()
    late = connection.open_channel(2)
    consumer = _Consumer(SUB, channel=late)
    transport._consume(consumer, late)
    assert consumer.consumer_tag is None and late._consumers == {}


def test_a_settlement_between_connections_does_not_stall_the_next_one():
    connection = SocketlessConnection()
    transport, posted = transport_on(connection)
    transport._supervisor.connection = None
    transport.settle(SUB, 1, 1, ACK)  # its wake-up is dropped: no connection runs
    transport._void_settlements()  # what the next connection's open does
    transport._supervisor.connection = connection  # type: ignore[assignment]
    transport.settle(SUB, 1, 2, ACK)
    assert len(posted) == 2  # posted again, not waiting on the lost wake-up


def test_acks_flow_on_the_next_connection_after_a_settlement_during_the_reconnect_wait():
    # The stall of the compose cluster test (docs/operations.md): a handler settled an event
    # of the lost connection while the consumer waited to reconnect; that wake-up went to
    # the dead I/O loop, the "wake-up pending" flag stayed set, and the next connection
    # never acked again (its prefetch full, its health green). The next open must reset it.
    first = SocketlessConnection()
    transport, posted = transport_on(first)
    transport.closed(OSError("lost"))  # what the supervisor says after the loss
    dropped: list[Callable[[], None]] = []
    transport.call_soon = dropped.append  # type: ignore[method-assign]  # no loop runs them
    transport.settle(SUB, 1, 1, REQUEUE)  # a handler finishing during the wait
    assert len(dropped) == 1

    second = SocketlessConnection()
    transport.call_soon = posted.append  # type: ignore[method-assign]
    transport._supervisor.connection = second  # type: ignore[assignment]
    transport.opened(second, "n2:5672")  # epoch 2
    channel = second.open_channel(2)
    consumer = transport._consumers[0]
    consumer.channel = channel
    on_message = _OnMessage(transport._on_message, consumer, 2)
    on_message(
        channel,
        spec.Basic.Deliver("ctag", 1, False, "hub", "user.x"),
        spec.BasicProperties(),
        b"{}",
    )
    posted.clear()
    transport.settle(SUB, 2, 1, ACK)
    assert len(posted) == 1  # woken, not left behind the lost wake-up
    second.written.clear()
    posted.pop()()
    assert methods(second.written) == [("Ack", 1, False)]
