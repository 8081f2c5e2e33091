"""Consuming inside the app's own event loop, against the real broker.

``async with hub.running()`` and ``await hub.consume()`` run async handlers
as tasks on the caller's loop; cancelling stops gracefully: in-flight events
finish and are acked, those past the shutdown timeout go back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from core_support import depth

from hubbub import Hub, HubbubError, OutgoingEvent
from hubbub.consumers import flight

pytestmark = pytest.mark.integration


def test_running_in_the_apps_loop_handles_every_event_once_as_concurrent_tasks(hubbub_vhost_url):
    hub = Hub("shop", url=hubbub_vhost_url)
    seen: list[int] = []
    in_flight = peak = 0

    @hub.subscriber("s", topics=["order.#"], concurrency=50)
    async def handler(event):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        seen.append(event.data["n"])
        in_flight -= 1

    hub.apply()

    async def app() -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        async with hub.running() as worker:
            assert worker.consuming.is_set()
            await asyncio.gather(*(hub.apublish("order.placed", {"n": n}) for n in range(300)))
            while len(seen) < 300:
                await asyncio.sleep(0.02)
            healthy, details = worker.health()
            assert healthy and details["loop_blocked"] == 0.0
        await hub.aclose()
        return loop

    asyncio.run(asyncio.wait_for(app(), 30))
    assert sorted(seen) == list(range(300))  # each once
    assert peak > 10  # tasks, not one at a time
    assert depth(hubbub_vhost_url, "shop.s") == 0


def test_cancelling_consume_lets_events_in_hand_finish_and_acks_them(hubbub_vhost_url):
    hub = Hub("shop", url=hubbub_vhost_url)
    started: list[int] = []
    finished: list[int] = []

    @hub.subscriber("s", topics=["order.#"], concurrency=20)
    async def handler(event):
        started.append(event.data["n"])
        await asyncio.sleep(0.5)
        finished.append(event.data["n"])

    hub.apply()
    hub.publish_many(OutgoingEvent("order.placed", {"n": n}) for n in range(20))

    async def app() -> None:
        consuming = asyncio.create_task(hub.consume(shutdown_timeout=10))
        while len(started) < 20:
            await asyncio.sleep(0.01)
        consuming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consuming

    asyncio.run(asyncio.wait_for(app(), 30))
    hub.close()
    assert sorted(finished) == list(range(20))  # all finished before the stop ended
    assert depth(hubbub_vhost_url, "shop.s") == 0  # and were acked


def test_past_the_shutdown_timeout_tasks_are_cancelled_and_their_events_released(
    hubbub_vhost_url, caplog
):
    hub = Hub("shop", url=hubbub_vhost_url)
    started: list[str] = []
    cancelled: list[str] = []

    @hub.subscriber("s", topics=["order.#"], concurrency=5)
    async def handler(event):
        started.append(event.id)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(event.id)
            raise

    hub.apply()
    event_id = hub.publish("order.placed", {})

    async def app() -> None:
        consuming = asyncio.create_task(hub.consume(shutdown_timeout=0.5))
        while not started:
            await asyncio.sleep(0.01)
        consuming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consuming

    with caplog.at_level(logging.WARNING, logger="hubbub.consumers"):
        asyncio.run(asyncio.wait_for(app(), 30))
    hub.close()
    assert cancelled == [event_id]
    assert any(
        f"event {event_id} (order.placed) of s released unfinished" in r.getMessage()
        for r in caplog.records
    )
    assert depth(hubbub_vhost_url, "shop.s") == 1  # back in its queue, nothing lost


def test_a_fatal_error_comes_out_of_running_in_one_line(hubbub_vhost_url):
    hub = Hub("shop", url=hubbub_vhost_url)

    @hub.subscriber("s", topics=["order.#"])
    async def handler(event):
        return None

    # not applied: the queue does not exist

    async def app() -> None:
        async with hub.running(ready_timeout=20):
            raise AssertionError("must not get here")

    with pytest.raises(HubbubError) as info:
        asyncio.run(asyncio.wait_for(app(), 30))
    assert "of hub 'shop' does not exist: run 'hubbub topology apply' first" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_handler_returning_at_the_shutdown_deadline_still_gets_its_ack(
    hubbub_vhost_url, monkeypatch, caplog
):
    """Its claim is taken just before the deadline, its ack handed over just after."""
    decided = flight.InFlight.decided

    def late(self, *args):  # widen the window between the claim and the ack
        if self._stopping.is_set():
            time.sleep(0.4)
        return decided(self, *args)

    monkeypatch.setattr(flight.InFlight, "decided", late)
    hub = Hub("shop", url=hubbub_vhost_url)
    finished: list[str] = []

    started = asyncio.Event()

    @hub.subscriber("s", topics=["order.#"])
    async def handler(event):
        started.set()
        await asyncio.sleep(0.3)
        finished.append(event.id)

    hub.apply()
    event_id = hub.publish("order.placed", {})

    async def app() -> None:
        consuming = asyncio.create_task(hub.consume(shutdown_timeout=0.5))
        await started.wait()
        consuming.cancel()  # the handler returns 0.3 s into the stop, its ack comes at 0.7 s
        with pytest.raises(asyncio.CancelledError):
            await consuming

    with caplog.at_level(logging.WARNING, logger="hubbub.consumers"):
        asyncio.run(asyncio.wait_for(app(), 30))
    hub.close()
    assert finished == [event_id]
    assert depth(hubbub_vhost_url, "shop.s") == 0  # acked: not sent round again
    assert not any("released unfinished" in r.getMessage() for r in caplog.records)
