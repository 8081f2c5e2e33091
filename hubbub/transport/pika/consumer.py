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
nodes round robin. A queue that disappears is fatal (:meth:`run` raises):
consuming from a recreated queue would hide that its events were deleted.
The broker cancelling a consumer (its node stopping, or the queue deleted)
reconnects, and the passive declare on the new channel tells the two apart.
"""

from __future__ import annotations

import logging
import random
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

from hubbub.connection import node_order
from hubbub.errors import HubbubError
from hubbub.message import new_delivery
from hubbub.topology.durations import format_duration
from hubbub.transport.acks import AckTracker
from hubbub.transport.base import ConsumerEvents, Subscription
from hubbub.transport.pika import probe
from hubbub.transport.pika._frames import one_write
from hubbub.transport.pika._inbound import install
from hubbub.transport.pika.convert import from_pika
from hubbub.transport.pika.params import connect_error, parameters

log = logging.getLogger("hubbub.consumers")

#: Reconnect backoff: first wait and cap, in seconds.
RECONNECT_FIRST, RECONNECT_CAP = 0.5, 30.0


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

    ``urls`` are the nodes of one cluster, tried in ``node_order``; ``name``
    labels the connection in the broker's UI.
    """

    def __init__(self, urls: Sequence[str], *, name: str) -> None:
        self.urls = list(urls)
        self._name = name
        self._params = parameters(node_order(self.urls), name=name)
        self._connection: SelectConnection | None = None
        self._consumers: list[_Consumer] = []
        self._events: ConsumerEvents | None = None
        self._epoch = 0
        self._lock = threading.Lock()
        self._settled: deque[tuple[Subscription, int, int, bool]] = deque()
        self._wake_pending = False
        self._closing = threading.Event()
        self._fatal: HubbubError | None = None
        self._connected_once = False
        self._open_error: BaseException | None = None
        self._opened = False  # the current connection opened

    # -- ConsumerTransport (any thread) ---------------------------------------

    def preflight(
        self, subscriptions: Sequence[Subscription], copy_exchanges: Sequence[str]
    ) -> None:
        probe.check_copy_targets(self.urls, copy_exchanges, name=self._name)

    def run(self, subscriptions: Sequence[Subscription], events: ConsumerEvents) -> None:
        """Consume until :meth:`close`; reconnects on its own; raises on fatal errors.

        Nodes are tried round robin from a random start (``node_order``), so
        after losing its node a consumer reconnects to the next one, after
        one backoff wait.
        """
        self._consumers = [_Consumer(s) for s in subscriptions]
        self._events = events
        failures = attempts = 0
        while not self._closing.is_set():
            params = self._params[attempts % len(self._params)]
            attempts += 1
            opened = self._run_connection(params)
            if self._fatal is not None:
                raise self._fatal
            if self._closing.is_set():
                break
            if not self._connected_once:
                failures += 1  # the first start tries every node once, then gives up
                if failures < len(self._params):
                    continue
                raise connect_error(self._open_error or OSError("closed"), self.urls)
            failures = 1 if opened else failures + 1
            wait = min(RECONNECT_CAP, RECONNECT_FIRST * 2 ** min(failures, 10))
            wait = wait / 2 + random.uniform(0, wait / 2)
            log.warning("connection to the broker lost; reconnecting in %.1fs", wait)
            self._closing.wait(wait)

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
        for consumer in self._consumers:
            channel = consumer.channel
            if channel is not None and channel.is_open and consumer.consumer_tag:
                channel.basic_cancel(consumer.consumer_tag)

    def call_soon(self, callback: Callable[[], None]) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            connection.ioloop.add_callback_threadsafe(callback)
        except Exception:
            log.debug("ioloop closed", exc_info=True)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        if self._connection is not None:
            self._connection.ioloop.call_later(delay, callback)

    def responsive(self, timeout: float) -> bool:
        connection = self._connection
        if connection is None or not connection.is_open:
            return False
        answered = threading.Event()
        self.call_soon(answered.set)
        return answered.wait(timeout)

    def close(self) -> None:
        self._closing.set()
        self.call_soon(self._close)

    # -- the I/O thread -------------------------------------------------------

    def _run_connection(self, params: pika.ConnectionParameters) -> bool:
        """Run one connection until it closes; True if it had opened."""
        self._open_error = None
        self._opened = False
        self._connection = SelectConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        self._connection.ioloop.start()
        with self._lock:
            # A wake-up posted to the dead ioloop never ran: the next settlement
            # must post again, or acks on the new connection would stall.
            self._wake_pending = False
            self._settled.clear()  # all of the closed epoch: void
        for consumer in self._consumers:
            consumer.channel, consumer.consumer_tag = None, None
            consumer.tracker = AckTracker()
        if self._opened and self._events is not None:
            self._events.disconnected()
        return self._opened

    def _on_open(self, connection: SelectConnection) -> None:
        self._connected_once = self._opened = True
        self._epoch += 1
        install(connection)
        assert self._events is not None
        self._events.connected(f"{connection.params.host}:{connection.params.port}")
        if self._closing.is_set():  # closed while connecting: nothing to consume
            connection.close()
            return
        for consumer in self._consumers:
            connection.channel(on_open_callback=partial(self._on_channel, consumer))

    def _on_open_error(self, connection: SelectConnection, error: BaseException | str) -> None:
        self._open_error = error if isinstance(error, BaseException) else OSError(str(error))
        if isinstance(error, pe.ProbableAuthenticationError | pe.ProbableAccessDeniedError):
            self._fatal = connect_error(error, self.urls)
        connection.ioloop.stop()

    def _on_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        if not self._closing.is_set():
            log.warning("connection closed: %s", reason)
        connection.ioloop.stop()

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
        if self._closing.is_set():
            return
        epoch = self._epoch
        consumer.consumer_tag = channel.basic_consume(
            consumer.subscription.queue, partial(self._on_message, consumer, epoch)
        )
        consumer.consumed = True
        assert self._events is not None
        self._events.consuming(consumer.subscription, epoch)

    def _on_message(
        self,
        consumer: _Consumer,
        epoch: int,
        _channel: Channel,
        method: Basic.Deliver,
        props: pika.BasicProperties,
        body: bytes,
    ) -> None:
        delivery = new_delivery(
            method.delivery_tag,
            method.exchange,
            method.routing_key,
            method.redelivered,
            from_pika(props, body),
        )
        consumer.tracker.add(delivery.tag)
        assert self._events is not None
        self._events.delivered(consumer.subscription, epoch, delivery)

    def _on_channel_closed(self, consumer: _Consumer, reason: BaseException) -> None:
        consumer.channel = None
        connection = self._connection
        if self._closing.is_set() or connection is None or not connection.is_open:
            return
        queue = consumer.subscription.queue
        if isinstance(reason, pe.ChannelClosedByBroker) and reason.reply_code == 404:
            if consumer.consumed:
                self._fail(
                    f"queue {queue!r} was deleted while consuming from it (its events are "
                    "gone): re-apply the hub's topology and restart the consumer"
                )
            else:
                self._fail(f"queue {queue!r} does not exist: run 'hubbub topology apply' first")
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
        connection.close()

    def _on_cancelled(self, consumer: _Consumer) -> None:
        # The broker cancels a consumer when its queue is deleted, but also
        # when a node stops: reconnect, and let the passive declare on the new
        # channel tell the two apart (404: the queue is gone, which is fatal).
        connection = self._connection
        if self._closing.is_set() or connection is None:
            return
        log.warning(
            "the broker cancelled consuming from %s; re-checking it", consumer.subscription.queue
        )
        if connection.is_open:
            connection.close()

    def _fail(self, message: str) -> None:
        log.debug(message)  # run() raises it: the caller reports it once
        self._fatal = HubbubError(message)
        self._closing.set()
        self._close()

    def _close(self) -> None:
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()

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
        with one_write(self._connection):  # the batch's acks in one system call
            for consumer, tags in acks.values():
                assert consumer.channel is not None
                for tag, multiple in consumer.tracker.complete(tags):
                    consumer.channel.basic_ack(tag, multiple=multiple)


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
