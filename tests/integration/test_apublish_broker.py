"""``await hub.apublish(...)`` against the real broker: confirmed, delivered, loop free."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
from core_support import take_all

from hubbub import Hub, OutgoingEvent
from hubbub.errors import PublishConnectionError, PublishError

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


def test_a_thousand_concurrent_apublish_are_all_confirmed_and_all_in_the_queue(
    declare, hub_name, broker_url
):
    declare({"hub": hub_name, "subscribers": {"s": {"handler": "x:y", "topics": ["order.#"]}}})

    async def app():
        hub = Hub(hub_name, url=broker_url)
        try:
            return await asyncio.gather(
                *(hub.apublish("order.placed", {"n": n}) for n in range(1000))
            )
        finally:
            await hub.aclose()

    ids = asyncio.run(app())
    stored = take_all(broker_url, f"{hub_name}.s")
    assert len(set(ids)) == 1000
    assert sorted(props.message_id for _, props, _ in stored) == sorted(ids)


@pytest.mark.same_on_every_version(reason="no broker: nothing listens on the port it connects to")
def test_an_unreachable_broker_fails_every_apublish_fast_in_one_line(hub_name):
    dead = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens on port 1

    async def app():
        hub = Hub(hub_name, url=dead)
        one = await asyncio.gather(
            *(hub.apublish("order.placed", {}, message_id=f"m{n}") for n in range(20)),
            return_exceptions=True,
        )
        with pytest.raises(PublishConnectionError) as many:
            await hub.apublish_many(OutgoingEvent("order.paid", n) for n in range(3))
        return one, many.value

    started = time.monotonic()
    one, many = asyncio.run(app())
    assert time.monotonic() - started < 5
    assert all(isinstance(error, PublishConnectionError) for error in one)
    assert [error.failed for error in one] == [[f"m{n}"] for n in range(20)]
    assert "127.0.0.1:1" in str(one[0]) and "\n" not in str(one[0])
    assert len(many.failed) == 3 and "\n" not in str(many)
