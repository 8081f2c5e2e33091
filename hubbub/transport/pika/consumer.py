"""Consuming from RabbitMQ on a pika ``SelectConnection``: the consumer transport.

Thread model. :meth:`PikaConsumerTransport.run` drives the connection on the
calling thread (the I/O thread). Each subscription gets its own channel with
its own prefetch; deliveries reach the worker's
:class:`~hubbub.transport.base.ConsumerEvents` on that thread. Acks and
requeues come from any thread: :meth:`~PikaConsumerTransport.settle` queues
them and wakes the I/O thread once per batch, which acks with as few frames
as :class:`~hubbub.transport.acks.AckTracker` allows, in one socket write.

Epochs. Each connection is one epoch: when it closes, every delivery it
carried is void (the broker redelivers it), and a settlement naming an older
epoch is dropped.

Failures. A lost connection is reopened with capped exponential backoff,
nodes round robin (:mod:`hubbub.transport.pika.supervisor`). A queue that
disappears is fatal (:meth:`run` raises): consuming from a recreated queue
would hide that its events were deleted.
The broker cancelling a consumer (its node stopping, or the queue deleted)
reconnects, and the passive declare on the new channel tells the two apart.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import pika
import pika.exceptions as pe
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

from hubbub.errors import HubbubError
from hubbub.message import Message, new_delivery
from hubbub.topology.durations import format_duration
from hubbub.transport.acks import AckTracker
from hubbub.transport.base import ConsumerEvents, Subscription
from hubbub.transport.pika import probe
from hubbub.transport.pika._frames import one_write
from hubbub.transport.pika._inbound import install
from hubbub.transport.pika.convert import from_pika
from hubbub.transport.pika.supervisor import WITH_BACKOFF, Supervisor

log = logging.getLogger("hubbub.consumers")


@dataclass
class _Consumer:
    """One subscription's channel in the current connection."""

    subscription: Subscription
    channel: Channel | None = None
    consumer_tag: str | None = None
    tracker: AckTracker = field(default_factory=AckTracker)
    consumed: bool = False  # it consumed once: a missing queue was deleted meanwhile


class PikaConsumerTransport:
    """A :class:`~hubbub.transport.base.ConsumerTransport` on pika (one connection at a time).

    ``urls`` are the nodes of one cluster; ``name`` labels the connection in
    the broker's UI. The connection's lifecycle (node rotation, open errors,
    reconnect backoff, the I/O loop) is the
    :class:`~hubbub.transport.pika.supervisor.Supervisor`'s; this class
    does the channels, consuming and settling on it.
    """

    def __init__(self, urls: Sequence[str], *, name: str) -> None:
        self.urls = list(urls)
        self._name = name
        self._supervisor = Supervisor(self.urls, name=name, reconnect=WITH_BACKOFF)
        self._consumers: list[_Consumer] = []
        self._events: ConsumerEvents | None = None
        self._epoch = 0
        self._cancelled = False  # cancel() was called: consume no more
        self._lock = threading.Lock()
        self._settled: deque[tuple[Subscription, int, int, bool]] = deque()
        self._wake_pending = False

    # -- ConsumerTransport (any thread) ---------------------------------------

    def preflight(
        self, subscriptions: Sequence[Subscription], copy_exchanges: Sequence[str]
    ) -> None:
        probe.check_copy_targets(self.urls, copy_exchanges, name=self._name)

    def run(self, subscriptions: Sequence[Subscription], events: ConsumerEvents) -> None:
        """Consume until :meth:`close`; reconnects on its own; raises on fatal errors."""
        self._consumers = [_Consumer(s) for s in subscriptions]
        self._events = events
        self._supervisor.run(self)

    def settle(self, subscription: Subscription, epoch: int, tag: int, ack: bool) -> None:
        with self._lock:
            self._settled.append((subscription, epoch, tag, ack))
            if self._wake_pending:
                return
            self._wake_pending = True
        self.call_soon(self._flush)

    def outstanding(self) -> int:
        return sum(len(c.tracker) for c in self._consumers)

    def cancel(self) -> None:
        self._cancelled = True
        for consumer in self._consumers:
            channel = consumer.channel
            if channel is not None and channel.is_open and consumer.consumer_tag:
                channel.basic_cancel(consumer.consumer_tag)

    def call_soon(self, callback: Callable[[], None]) -> None:
        self._supervisor.call_soon(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self._supervisor.call_later(delay, callback)

    def responsive(self, timeout: float) -> bool:
        return self._supervisor.responsive(timeout)

    def close(self) -> None:
        self._supervisor.stop()

    # -- the supervisor's ConnectionEvents (the I/O thread) -------------------

    def opened(self, connection: SelectConnection, node: str) -> None:
        """A new epoch: open a channel per subscription."""
        self._epoch += 1
        self._void_settlements()  # any queued since the last epoch ended
        install(connection)
        assert self._events is not None
        self._events.connected(node)
        if self._supervisor.stopping:  # closed by the worker meanwhile
            return
        for consumer in self._consumers:
            connection.channel(on_open_callback=partial(self._on_channel, consumer))

    def closed(self, reason: BaseException) -> None:
        """The epoch ended: what it carried is void."""
        self._void_settlements()
        for consumer in self._consumers:
            consumer.channel, consumer.consumer_tag = None, None
            consumer.tracker = AckTracker()
        assert self._events is not None
        self._events.disconnected()

    def blocked(self, reason: str | None) -> None:
        """Publishers are blocked, not consumers: nothing to do."""

    def _void_settlements(self) -> None:
        """Drop the queued settlements: they name an epoch that ended.

        A wake-up posted to a dead ioloop (or dropped between connections)
        never ran: the next settlement must post again, or acks on the new
        connection would stall.
        """
        with self._lock:
            self._wake_pending = False
            self._settled.clear()

    # -- channels (the I/O thread) --------------------------------------------

    def _on_channel(self, consumer: _Consumer, channel: Channel) -> None:
        consumer.channel = channel
        channel.add_on_close_callback(lambda ch, why: self._on_channel_closed(consumer, why))
        channel.add_on_cancel_callback(lambda frame: self._on_cancelled(consumer))
        queue = consumer.subscription.queue
        channel.basic_qos(
            prefetch_count=consumer.subscription.prefetch,
            callback=lambda _f: channel.queue_declare(
                queue, passive=True, callback=lambda _f2: self._consume(consumer, channel)
            ),
        )

    def _consume(self, consumer: _Consumer, channel: Channel) -> None:
        if self._supervisor.stopping or self._cancelled:
            return
        epoch = self._epoch
        consumer.consumer_tag = channel.basic_consume(
            consumer.subscription.queue, _OnMessage(self._on_message, consumer, epoch)
        )
        consumer.consumed = True
        assert self._events is not None
        self._events.consuming(consumer.subscription, epoch)

    def _on_message(
        self, consumer: _Consumer, epoch: int, method: Basic.Deliver, message: Message
    ) -> None:
        delivery = new_delivery(
            method.delivery_tag,
            method.exchange,
            method.routing_key,
            method.redelivered,
            message,
        )
        consumer.tracker.add(delivery.tag)
        assert self._events is not None
        self._events.delivered(consumer.subscription, epoch, delivery)

    def _on_channel_closed(self, consumer: _Consumer, reason: BaseException) -> None:
        consumer.channel = None
        connection = self._supervisor.connection
        if self._supervisor.stopping or connection is None or not connection.is_open:
            return
        queue = consumer.subscription.queue
        if isinstance(reason, pe.ChannelClosedByBroker) and reason.reply_code == 404:
            if consumer.consumed:
                message = (
                    f"queue {queue!r} was deleted while consuming from it (its events are "
                    "gone): re-apply the hub's topology and restart the consumer"
                )
            else:
                message = f"queue {queue!r} does not exist: run 'hubbub topology apply' first"
            self._supervisor.fail(HubbubError(message))
            return
        if consumer_timeout(reason):
            limit = consumer.subscription.timeout
            log.error(
                "the broker closed the channel of %s because an event stayed unacked past "
                "its consumer_timeout: every event the channel held goes back to the queue "
                "and counts towards its delivery limit; keep the subscriber's timeout "
                "(%s) and prefetch x timeout / concurrency below the broker's "
                "consumer_timeout; reconnecting",
                queue,
                "none" if limit is None else format_duration(limit),
            )
        else:
            log.error("channel of %s closed by the broker (%s); reconnecting", queue, reason)
        self._supervisor.disconnect()

    def _on_cancelled(self, consumer: _Consumer) -> None:
        # The broker cancels a consumer when its queue is deleted, but also
        # when a node stops: reconnect, and let the passive declare on the new
        # channel tell the two apart (404: the queue is gone, which is fatal).
        if self._supervisor.stopping or self._supervisor.connection is None:
            return
        log.warning(
            "the broker cancelled consuming from %s; re-checking it", consumer.subscription.queue
        )
        self._supervisor.disconnect()

    def _flush(self) -> None:
        """Send the settlements queued since the last wake-up (I/O thread)."""
        with self._lock:
            self._wake_pending = False
            batch = list(self._settled)
            self._settled.clear()
        acks: dict[int, tuple[_Consumer, list[int]]] = {}
        for subscription, epoch, tag, ack in batch:
            consumer = self._consumers[subscription.index]
            channel = consumer.channel
            if epoch != self._epoch or channel is None or not channel.is_open:
                continue  # the channel that delivered it is gone: the broker redelivers
            if ack:
                entry = acks.get(subscription.index)
                if entry is None:  # not setdefault: it would build a tuple per delivery
                    entry = acks[subscription.index] = (consumer, [])
                entry[1].append(tag)
            else:
                consumer.tracker.forget(tag)
                channel.basic_nack(tag, requeue=True)
        with one_write(self._supervisor.connection):  # the batch's acks in one system call
            for consumer, tags in acks.values():
                assert consumer.channel is not None
                for tag, multiple in consumer.tracker.complete(tags):
                    consumer.channel.basic_ack(tag, multiple=multiple)


class _OnMessage:
    """A consumer's delivery callback, for both ways deliveries are read.

    pika's own reading calls it with ``BasicProperties`` (converted here);
    the fast reader (:mod:`~hubbub.transport.pika._inbound`) calls
    :meth:`deliver_message` with the :class:`~hubbub.message.Message` it built
    straight from the frame, so no ``BasicProperties`` is made in between.
    """

    __slots__ = ("_consumer", "_epoch", "_on_message")

    def __init__(
        self,
        on_message: Callable[[_Consumer, int, Basic.Deliver, Message], None],
        consumer: _Consumer,
        epoch: int,
    ) -> None:
        self._on_message = on_message
        self._consumer = consumer
        self._epoch = epoch

    def __call__(
        self, _channel: Channel, method: Basic.Deliver, props: pika.BasicProperties, body: bytes
    ) -> None:
        self._on_message(self._consumer, self._epoch, method, from_pika(props, body))

    def deliver_message(self, method: Basic.Deliver, message: Message) -> None:
        self._on_message(self._consumer, self._epoch, method, message)


def consumer_timeout(reason: BaseException) -> bool:
    """True for the broker's ``consumer_timeout`` closing a channel.

    RabbitMQ 3.10 says: ``PRECONDITION_FAILED - delivery acknowledgement on
    channel 1 timed out. Timeout value used: 3000 ms. ...`` (406).
    """
    text = str(getattr(reason, "reply_text", ""))
    return (
        isinstance(reason, pe.ChannelClosedByBroker)
        and reason.reply_code == 406
        and "delivery acknowledgement" in text
        and "timed out" in text
    )
