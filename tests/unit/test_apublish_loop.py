"""``Publisher.apublish`` never blocks the event loop, and keeps the confirm guarantee.

The publisher runs on stub transports whose I/O "thread" (a timer)
confirms, refuses or never answers, so the loop's freedom is measured
against a known, long confirm time without a broker.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from hubbub import OutgoingEvent, Publisher
from hubbub.errors import PublishError
from hubbub.topology import delay
from hubbub.topology.names import HubNames
from hubbub.transport.base import Pending

CONFIRM_AFTER = 0.5
#: Longest pause a ticker every 10 ms may see while the loop is free (2 busy cores).
MAX_GAP = 0.15


class StubTransport:
    """Settles each message from another thread, like the I/O thread does."""

    blocked = None

    def __init__(self, after: float = CONFIRM_AFTER, outcome: str = "ack") -> None:
        self.live = True
        self.after, self.outcome = after, outcome
        self.sent: list[Pending] = []

    def connect(self) -> None:
        self.live = True

    def send_many(self, pending) -> None:
        for message in pending:
            self.sent.append(message)
            if self.outcome != "silent":
                threading.Timer(self.after, self._settle, args=(message,)).start()

    def _settle(self, message: Pending) -> None:
        if self.outcome == "nack" or message.outbound.routing_key == "refused":
            message.settle(PublishError("the broker refused the message"))
        else:
            message.settle(None)

    def close(self, timeout: float = 10.0) -> None:
        self.live = False


def publisher(transport: StubTransport, **options) -> Publisher:
    url = "amqp://guest:guest@127.0.0.1:1/%2F"
    return Publisher("events", url=url, transport=transport, **options)


async def with_ticker(work):
    """Run ``work`` while a task ticks every 10 ms; returns (result, ticks)."""
    ticks: list[float] = []
    stop = asyncio.Event()

    async def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    try:
        result = await work
    finally:
        stop.set()
        await ticker
    return result, ticks


def longest_gap(ticks: list[float]) -> float:
    return max(b - a for a, b in itertools.pairwise(ticks))


def test_the_loop_runs_while_the_confirm_is_awaited():
    link = StubTransport()
    pub = publisher(link)
    started = time.monotonic()
    event_id, ticks = asyncio.run(with_ticker(pub.apublish("user.signed_up", {"n": 1})))
    assert time.monotonic() - started >= CONFIRM_AFTER  # it did wait for the confirm
    assert [m.outbound.message.message_id for m in link.sent] == [event_id]
    assert link.sent[0].outbound.routing_key == "user.signed_up"
    assert len(ticks) >= 20 and longest_gap(ticks) < MAX_GAP


def test_connecting_happens_off_the_loop():
    link = StubTransport(after=0.01)
    link.live = False
    pub = publisher(link)

    def slow_connect() -> None:
        time.sleep(CONFIRM_AFTER)
        link.live = True

    link.connect = slow_connect  # type: ignore[method-assign]
    _, ticks = asyncio.run(with_ticker(pub.apublish("a", {})))
    assert len(link.sent) == 1
    assert len(ticks) >= 20 and longest_gap(ticks) < MAX_GAP


def test_a_refused_or_unconfirmed_event_raises_publish_error():
    with pytest.raises(PublishError, match="refused"):
        asyncio.run(publisher(StubTransport(after=0.01, outcome="nack")).apublish("a", {}))
    silent = publisher(StubTransport(outcome="silent"), confirm_timeout=0.2)
    with pytest.raises(PublishError, match=r"did not confirm within 0\.2 s"):
        asyncio.run(silent.apublish("a", {}))


def test_apublish_many_pipelines_and_names_the_failures():
    link = StubTransport(after=CONFIRM_AFTER)
    pub = publisher(link)
    events = [OutgoingEvent("ok", 1), OutgoingEvent("refused", 2), OutgoingEvent("ok", 3, delay=5)]
    started = time.monotonic()
    with pytest.raises(PublishError, match="1 of 3 events were not confirmed") as caught:
        asyncio.run(pub.apublish_many(events))
    assert time.monotonic() - started < 2 * CONFIRM_AFTER  # in flight together, not in turn
    assert caught.value.failed == [link.sent[1].outbound.message.message_id]
    ladder = delay.entry_exchange(HubNames("events"), 5)
    assert link.sent[2].outbound.exchange == ladder  # the delayed one goes to the ladder
