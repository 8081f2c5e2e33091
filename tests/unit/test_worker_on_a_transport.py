"""The Worker on a transport that is not pika: what it settles, and when.

A scripted transport delivers on the calling thread and records the
settlements; handlers run inline. The copies of retries go to a publisher
whose confirms the test gives by hand, so "acked only after the copy is
confirmed" is checked step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future

import pytest

from hubbub import envelope
from hubbub.consumers.worker import Worker
from hubbub.errors import HubbubError
from hubbub.message import Delivery, Outbound
from hubbub.topology import loader
from hubbub.transport.base import ACK, REQUEUE, ConsumerEvents, Subscription
from hubbub.transport.errors import CopyTargetError

FILE = """
hub: shop
subscribers:
  mail: {handler: "m:f", topics: [user.*], retry: {attempts: 3, backoff: 1}}
"""


def delivery(tag: int) -> Delivery:
    message = envelope.message("user.signed_up", b"{}", message_id=f"ev-{tag}", headers={})
    return Delivery(tag, "shop", "user.signed_up", False, message)


class Scripted:
    """Delivers ``tags`` in epoch 1 once consuming, then returns (an in-memory transport may)."""

    def __init__(self, tags: Sequence[int], *, refuse: list[str] | None = None) -> None:
        self.tags = tags
        self.refuse = refuse
        self.settled: list[tuple[int, int, bool]] = []
        self.closed = False
        self.later: list[Callable[[], None]] = []

    def preflight(
        self, subscriptions: Sequence[Subscription], copy_exchanges: Sequence[str]
    ) -> None:
        if self.refuse:
            raise CopyTargetError("refused", missing=[], refused=self.refuse)

    def run(self, subscriptions: Sequence[Subscription], events: ConsumerEvents) -> None:
        events.connected("memory")
        for subscription in subscriptions:
            events.consuming(subscription, 1)
        for tag in self.tags:
            events.delivered(subscriptions[0], 1, delivery(tag))

    def settle(self, subscription: Subscription, epoch: int, tag: int, ack: bool) -> None:
        self.settled.append((epoch, tag, ack))

    def outstanding(self) -> int:
        return 0

    def cancel(self) -> None: ...

    def call_soon(self, callback: Callable[[], None]) -> None:
        callback()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.later.append(callback)

    def responsive(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class HeldConfirms:
    """A publisher whose confirms wait for the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[Outbound, Future[None]]] = []

    def send(self, outbound: Outbound) -> Future[None]:
        future: Future[None] = Future()
        self.sent.append((outbound, future))
        return future


def worker(transport: Scripted, handler: Callable[..., object]) -> tuple[Worker, HeldConfirms]:
    publisher = HeldConfirms()
    made = Worker(
        loader.loads(FILE),
        {"mail": handler},
        url="amqp://guest:guest@127.0.0.1:1/%2F",
        transport=transport,
        publisher=publisher,  # type: ignore[arg-type]
        inline=True,
    )
    return made, publisher


def test_a_handled_event_is_acked_and_a_failed_one_only_once_its_copy_is_confirmed():
    def handler(event):
        if event.id == "ev-2":
            raise ValueError("boom")

    transport = Scripted([1, 2, 3])
    consumer, publisher = worker(transport, handler)
    consumer.run()
    assert transport.settled == [(1, 1, ACK), (1, 3, ACK)]  # 2 waits for its copy
    [(copy, confirm)] = publisher.sent
    assert copy.exchange == "hubbub.v1.shop.delay.L00" and copy.message.message_id == "ev-2"
    confirm.set_result(None)
    assert transport.settled[-1] == (1, 2, ACK)


def test_a_copy_that_fails_releases_its_event_after_a_backoff():
    transport = Scripted([1])
    consumer, publisher = worker(transport, lambda event: 1 / 0)
    consumer.run()
    publisher.sent[0][1].set_exception(OSError("connection lost"))
    assert transport.settled == []  # not at once: it would burn its delivery limit
    [release] = transport.later
    release()
    assert transport.settled == [(1, 1, REQUEUE)]


def test_a_refused_copy_stops_the_worker_with_the_grant_and_requeues():
    transport = Scripted([1])
    consumer, publisher = worker(transport, lambda event: 1 / 0)
    consumer.run()
    error = PermissionError("ACCESS_REFUSED - access to exchange 'shop.delay.l27' refused")
    publisher.sent[0][1].set_exception(error)
    assert transport.closed and transport.settled == [(1, 1, REQUEUE)]
    assert consumer._fatal is not None
    assert str(consumer._fatal).startswith("cannot retry or dead-letter: user 'guest' may not")
    assert "rabbitmqctl set_permissions -p '/' 'guest'" in str(consumer._fatal)


def test_preflight_refusals_are_worded_with_the_grant_before_consuming():
    transport = Scripted([1], refuse=["shop.dlx"])
    consumer, _ = worker(transport, lambda event: None)
    with pytest.raises(HubbubError, match=r"user 'guest' may not write to exchange 'shop\.dlx'"):
        consumer.run()
    assert transport.settled == []


def test_stop_before_any_connection_closes_the_transport():
    transport = Scripted([])
    consumer, _ = worker(transport, lambda event: None)
    consumer.stop()
    assert transport.closed
