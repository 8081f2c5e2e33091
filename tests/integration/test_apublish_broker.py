"""``await hub.apublish(...)`` against the real broker: confirmed, delivered, loop free."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from hubbub import Hub, OutgoingEvent
from hubbub.errors import PublishError

pytestmark = pytest.mark.integration

#: Longest pause a ticker every 10 ms may see (connect and confirms happen off the loop).
MAX_GAP = 0.25


def test_apublish_is_confirmed_delivered_and_never_blocks_the_loop(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(
        {"hub": hub_name, "subscribers": {"s": {"handler": "x:y", "topics": ["order.#"]}}}
    )
    got, lock, all_in = [], threading.Lock(), threading.Event()

    def handler(event):
        with lock:
            got.append(event.id)
            if len(got) == 201:
                all_in.set()

    run_worker(topology, {"s": handler})

    async def app():
        ticks: list[float] = []

        async def tick():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.02)
        hub = Hub(topology=topology, url=broker_url)
        try:
            first = await hub.apublish("order.placed", {"n": -1})  # connects, off the loop
            ids = await asyncio.gather(
                *(hub.apublish("order.placed", {"n": n}) for n in range(100))
            )
            many = await hub.apublish_many(OutgoingEvent("order.paid", n) for n in range(100))
        finally:
            await hub.aclose()
            ticker.cancel()
        return [first, *ids, *many], ticks

    ids, ticks = asyncio.run(app())
    assert all_in.wait(15)
    assert sorted(got) == sorted(ids) and len(set(ids)) == 201
    assert max(b - a for a, b in itertools.pairwise(ticks)) < MAX_GAP


def test_apublish_raises_when_the_broker_does_not_store_the_event(broker_url, hub_name):
    async def app():
        hub = Hub(hub_name, url=broker_url)  # never applied: its exchange does not exist
        try:
            await hub.apublish("order.placed", {})
        finally:
            await hub.aclose()

    with pytest.raises(PublishError, match="exchange does not exist"):
        asyncio.run(app())
