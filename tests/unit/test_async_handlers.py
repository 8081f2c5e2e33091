"""Async handlers without a broker: tasks, their limit, time limits, a blocked loop, test hubs.

The behaviours every handler shares (acks, retries, dead-letters, publishing
from handlers) are in the contract suite, which runs each with async
handlers too; these are the parts only async handlers have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import pytest

import hubbub
from hubbub.consumers.tasks import Loops, LoopWatch, TaskPool
from hubbub.testing import InMemoryHub


def test_a_task_pool_runs_at_most_its_limit_at_once_in_arrival_order():
    loops = Loops(name="test")
    pool = TaskPool(loops, 3, name="test")
    running, peak, order = 0, 0, []
    released = threading.Event()

    async def work(n: int, task: object) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(n)
        while not released.is_set():
            await asyncio.sleep(0.005)
        running -= 1

    try:
        for n in range(10):
            pool.submit(work, n)
        time.sleep(0.2)
        assert (running, order) == (3, [0, 1, 2])  # the rest wait their turn
        released.set()
        assert pool.shutdown(5) == 0
        assert peak == 3
        assert order == list(range(10))
    finally:
        loops.close()


def test_a_task_pool_cancels_what_still_runs_at_the_shutdown_deadline():
    loops = Loops(name="test")
    pool = TaskPool(loops, 2, name="test")
    cancelled = []

    async def forever(n: int, task: object) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    try:
        pool.submit(forever, 1)
        pool.submit(forever, 2)
        assert pool.shutdown(0.2) == 2
        deadline = time.monotonic() + 2
        while len(cancelled) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(cancelled) == [1, 2]
    finally:
        loops.close()


def test_a_late_write_off_never_cancels_the_next_event_on_that_worker():
    loops = Loops(name="test")
    pool = TaskPool(loops, 1, name="test")
    tickets: list[object] = []
    second_started, finish_second, outcomes = threading.Event(), threading.Event(), []

    async def first(n: int, ticket: object) -> None:
        tickets.append(ticket)

    async def second(n: int, ticket: object) -> None:
        second_started.set()
        try:
            while not finish_second.is_set():
                await asyncio.sleep(0.005)
            outcomes.append("finished")
        except asyncio.CancelledError:
            outcomes.append("cancelled")
            raise

    try:
        pool.submit(first, 1)
        pool.submit(second, 2)
        assert second_started.wait(2)
        pool.write_off(tickets[0])  # the first event's ticket, written off too late
        time.sleep(0.1)
        finish_second.set()
        assert pool.shutdown(2) == 0
        assert outcomes == ["finished"]
    finally:
        loops.close()


def test_a_written_off_handler_that_ignores_cancelling_is_stuck_and_replaced():
    loops = Loops(name="test")
    pool = TaskPool(loops, 1, name="test")
    tickets: list[object] = []
    release, others = threading.Event(), []

    async def stubborn(n: int, ticket: object) -> None:
        tickets.append(ticket)
        while not release.is_set():
            # the mistake under test: it swallows its cancellation
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.005)

    async def other(n: int, ticket: object) -> None:
        others.append(n)

    try:
        pool.submit(stubborn, 0)
        deadline = time.monotonic() + 2
        while not tickets and time.monotonic() < deadline:
            time.sleep(0.01)
        pool.write_off(tickets[0])
        for n in range(1, 4):
            pool.submit(other, n)
        deadline = time.monotonic() + 2
        while len(others) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert others == [1, 2, 3]  # a new worker took the seat: the limit of 1 still runs
        assert pool.stuck() == 1
        release.set()
        deadline = time.monotonic() + 2
        while pool.stuck() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.stuck() == 0
    finally:
        release.set()
        loops.close()


def test_an_exception_escaping_a_task_is_logged_and_the_pool_goes_on(caplog):
    loops = Loops(name="test")
    pool = TaskPool(loops, 1, name="hubbub-s")
    done = threading.Event()

    async def boom(n: int, task: object) -> None:
        raise RuntimeError("escaped")

    async def fine(n: int, task: object) -> None:
        done.set()

    try:
        with caplog.at_level(logging.ERROR, logger="hubbub.consumers"):
            pool.submit(boom, 1)
            pool.submit(fine, 2)
            assert done.wait(2)
        assert "hubbub-s: unexpected error in a handler task" in caplog.text
        assert "RuntimeError: escaped" in caplog.text
    finally:
        loops.close()


def test_a_blocked_loop_is_named_once_with_the_blocking_handler_and_line(caplog):
    loops = Loops(name="test")
    loop = loops.loop()
    holder: dict[str, asyncio.Task[None]] = {}

    def describe(task: asyncio.Task[object]) -> str | None:
        return "the handler of s (app:send) on event e1" if task is holder.get("t") else None

    watch = LoopWatch(loop, describe, threshold=0.2).start()

    async def blocks() -> None:
        holder["t"] = asyncio.current_task()  # type: ignore[assignment]
        time.sleep(0.6)  # the mistake under test

    try:
        with caplog.at_level(logging.WARNING, logger="hubbub.consumers"):
            time.sleep(0.1)
            assert watch.check(time.monotonic()) == 0.0  # beating
            future = asyncio.run_coroutine_threadsafe(blocks(), loop)
            time.sleep(0.4)
            assert watch.overdue() > 0.2
            assert watch.check(time.monotonic()) > 0.2
            assert watch.check(time.monotonic()) > 0.2  # the same stall: warned once
            future.result(2)
        (record,) = [r for r in caplog.records if "blocked" in r.getMessage()]
        message = record.getMessage()
        assert "blocked for 0." in message
        assert "by the handler of s (app:send) on event e1" in message
        assert "test_async_handlers.py:" in message and "(blocks)" in message
        assert "asyncio.to_thread" in message
        assert watch.stalls == 1
        time.sleep(0.2)
        assert watch.overdue() == 0.0  # beating again
    finally:
        watch.stop()
        loops.close()


# -- the in-memory hub -----------------------------------------------------------


def test_an_async_handler_past_its_time_limit_is_cancelled_and_retried():
    hub = InMemoryHub("shop")
    cancelled = []

    @hub.subscriber("s", topics=["t"], timeout=0.3, retry={"attempts": 2, "jitter": 0})
    async def stuck(event):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(event.attempt)
            raise

    hub.publish("t", {})
    started = time.monotonic()
    hub.run_until_idle()
    assert time.monotonic() - started < 5  # cut at its limit, not after 30 s
    assert cancelled == [1]
    (attempt,) = hub.attempts("s")
    assert (attempt.outcome, attempt.error) == (
        "retry",
        "hubbub.consumers.watchdog.HandlerTimeoutError",
    )


def test_arun_until_idle_runs_async_handlers_on_the_tests_own_loop():
    hub = InMemoryHub("shop")
    seen = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Event()  # made on this loop: only a handler on it may wait on it

        @hub.subscriber("s", topics=["t"])
        async def handler(event):
            assert asyncio.get_running_loop() is loop
            await gate.wait()
            seen.append(event.data["n"])
            await hubbub.apublish("t.done", {"n": event.data["n"]})

        hub.publish("t", {"n": 1})
        hub.publish("t", {"n": 2})
        loop.call_later(0.05, gate.set)
        assert await hub.arun_until_idle() == 2

    asyncio.run(scenario())
    assert seen == [1, 2]  # one at a time, in order
    assert [e.data for e in hub.published("t.done")] == [{"n": 1}, {"n": 2}]


def test_run_until_idle_inside_a_running_loop_still_runs_async_handlers():
    hub = InMemoryHub("shop")
    seen = []

    @hub.subscriber("s", topics=["t"])
    async def handler(event):
        await asyncio.sleep(0)
        seen.append(event.id)

    async def scenario() -> int:
        event_id = hub.publish("t", {})
        assert hub.run_until_idle() == 1  # a sync call in an async test
        return len(seen) and seen.index(event_id) + 1

    assert asyncio.run(scenario()) == 1


def test_sync_and_async_handlers_live_in_one_hub_and_the_recorder_sees_both():
    hub = InMemoryHub("shop")

    @hub.subscriber("plain", topics=["t"])
    def plain(event):
        return None

    @hub.subscriber("coro", topics=["t"], retry={"attempts": 1})
    async def coro(event):
        raise ValueError("nope")

    event_id = hub.publish("t", {})
    hub.run_until_idle()
    assert [e.id for e in hub.handled("plain")] == [event_id]
    (dead,) = hub.dead_lettered("coro")
    assert dead.event.id == event_id
    assert dead.exception == "ValueError"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_handler_awaiting_a_cancelled_operation_fails_it_is_not_a_stop(kind):
    """A CancelledError the handler's own code raises is a failure like another."""
    hub = InMemoryHub("shop")

    @hub.subscriber("s", topics=["t"], retry={"attempts": 1})
    async def handler(event):
        inner = asyncio.ensure_future(asyncio.sleep(10))
        inner.cancel()
        await inner  # raises CancelledError, though this task was not cancelled

    hub.publish("t", {})
    if kind == "sync":
        hub.run_until_idle()
    else:
        asyncio.run(hub.arun_until_idle())
    (dead,) = hub.dead_lettered("s")
    assert dead.exception == "asyncio.exceptions.CancelledError"
