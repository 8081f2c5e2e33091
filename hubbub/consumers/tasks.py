"""Async handlers: their event loop, their tasks, and a watch on the loop.

An ``async def`` handler's events run as tasks on one event loop per
worker: the app's own (``await hub.consume()``, ``async with
hub.running()``) or one the worker starts on a thread of its own
(``hubbub consume``, ``worker.run()``). A subscriber's ``concurrency`` is
then the number of its events in flight at once (tasks, not threads), so
one process holds hundreds of I/O-bound handlers.

Deliveries still arrive on the transport's thread. :class:`TaskPool` moves
them to the loop in batches: the transport's thread appends to a deque and
wakes the loop only when no wake-up is pending (one self-pipe write per
batch, not per event), and the loop starts a task per delivery while fewer
than ``concurrency`` run. Settling needs no hop back: the transport takes
acks from any thread.

A handler that blocks the loop (``time.sleep``, blocking I/O) stalls every
other task on it. :class:`LoopWatch` notices: the loop beats a few times a
second, the worker's watchdog thread sees a beat overdue and names the
handler the loop is stuck in (:meth:`LoopWatch.check`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("hubbub.consumers")

#: Seconds the loop may go without a beat before a WARNING names what blocks it.
DEFAULT_LOOP_LAG = 0.5
#: Seconds between the loop's beats.
BEAT = 0.05
#: Events a worker task handles in a row before it yields to the loop.
YIELD_EVERY = 64

AsyncWork = Callable[..., Coroutine[Any, Any, None]]


async def awaited(awaitable: Awaitable[Any]) -> Any:
    """A coroutine of any awaitable (what ``run_coroutine_threadsafe`` takes)."""
    return await awaitable


class Loops:
    """Where a worker's async handlers run: a given loop, or one of its own on a thread.

    ``given`` (settable until the worker runs): the app's running loop. Without
    one, :meth:`loop` starts a loop on a daemon thread the first time it is
    needed, and :meth:`close` stops it.
    """

    def __init__(self, given: asyncio.AbstractEventLoop | None = None, *, name: str) -> None:
        self.given = given
        self._name = name
        self._own: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> asyncio.AbstractEventLoop | None:
        """The loop in use, if any yet."""
        return self.given or self._own

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop handlers run on (starting the worker's own on first use)."""
        if self.given is not None:
            return self.given
        own = self._own
        if own is not None:
            return own
        with self._lock:
            if self._own is None:
                self._own = self._start()
            return self._own

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Run ``awaitable`` on the loop and wait for it (from any thread but the loop's)."""
        future = asyncio.run_coroutine_threadsafe(awaited(awaitable), self.loop())
        return future.result()

    def _start(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        loop.call_soon(started.set)
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"{self._name}-loop", daemon=True
        )
        self._thread.start()
        started.wait()
        return loop

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker's own loop (a given one is the app's: left running)."""
        with self._lock:
            loop, thread, self._own, self._thread = self._own, self._thread, None, None
        if loop is None or thread is None:
            return

        def stop() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancellations have run a step

        loop.call_soon_threadsafe(stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()


class InlineLoops(Loops):
    """Loops for a worker whose handlers run on the caller's thread (the in-memory hub).

    :meth:`run` runs a handler's coroutine to its end before returning, so a
    test run stays one event at a time and repeatable: on ``given`` (the
    test's own loop, from another thread) when set, else on a private loop
    on this thread; and if this thread already runs a loop (a sync call in
    an async test), on a private loop on a helper thread.
    """

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self._private: asyncio.AbstractEventLoop | None = None

    def run(self, awaitable: Awaitable[Any]) -> Any:
        if self.given is not None:
            return asyncio.run_coroutine_threadsafe(awaited(awaitable), self.given).result()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._private is None or self._private.is_closed():
                self._private = asyncio.new_event_loop()
            return self._private.run_until_complete(awaited(awaitable))
        with concurrent.futures.ThreadPoolExecutor(1, f"{self._name}-inline") as helper:
            return helper.submit(asyncio.run, awaited(awaitable)).result()

    def close(self, timeout: float = 5.0) -> None:
        private, self._private = self._private, None
        if private is not None and not private.is_closed():
            private.close()


class InlineTasks:
    """The inline pool of an async subscriber: each event's task runs to its end at once."""

    threads = 1
    kind = "task"

    def __init__(self, loops: InlineLoops) -> None:
        self._loops = loops

    def submit(self, function: AsyncWork, *args: object) -> None:
        self._loops.run(function(*args))

    def write_off(self, who: object) -> None:
        cancel(who)

    def stuck(self) -> int:
        return 0

    def shutdown(self, timeout: float | None = None) -> int:
        return 0


class Ticket:
    """One delivery's turn on a worker task: what a time limit cancels.

    A written-off ticket cancels its task only while the task still runs
    that delivery: a cancel that arrives late never hits the next event.
    """

    __slots__ = ("seat", "task")

    def __init__(self, seat: _Seat, task: asyncio.Task[None]) -> None:
        self.seat = seat
        self.task = task


class _Seat:
    """A worker task of a pool, and the ticket of the delivery it runs (None: idle)."""

    __slots__ = ("retired", "task", "ticket")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.ticket: Ticket | None = None
        self.retired = False


class TaskPool:
    """A subscriber's async handlers: ``limit`` worker tasks on the worker's loop.

    A pool of tasks as :class:`~hubbub.consumers.dispatch.Dispatcher` is one
    of threads: each worker task takes deliveries in arrival order and runs
    them one at a time, so at most ``limit`` events are in flight. No task
    is made per event: a handler that finishes without suspending costs one
    coroutine call, not a task and a loop iteration (a worker still yields to
    the loop every :data:`YIELD_EVERY` events, so nothing else on it starves).

    :meth:`submit` from any thread, never blocking; the transport's thread
    wakes the loop at most once per batch. Past a time limit a delivery's
    ticket is written off: its worker task is cancelled (at the ``await`` the
    handler waits on) and retired, a new worker takes its seat, and one that
    ignores the cancellation is counted by :meth:`stuck` until it ends.

    Like a handler thread, a worker task serves event after event: a context
    variable a handler sets and does not reset is seen by the next event on
    that task (hubbub's own are reset; set yours in an ``aconsume`` hook).
    """

    kind = "task"

    def __init__(self, loops: Loops, limit: int, *, name: str) -> None:
        self.threads = limit  # what it runs at once, as a thread pool's threads
        self._loops = loops
        self._name = name
        self._incoming: deque[tuple[AsyncWork, tuple[object, ...]]] = deque()
        self._woken = False
        self._seats: list[_Seat] = []
        self._retired: list[_Seat] = []
        self._waiting: deque[asyncio.Future[None]] = deque()  # idle workers' wake-ups
        self._busy = 0
        self._spreading = False
        #: Set once the pool is closed and nothing runs or waits (what shutdown waits for).
        self._drained = threading.Event()
        self._closed = False

    def submit(self, function: AsyncWork, *args: object) -> None:
        self._incoming.append((function, args))
        if not self._woken:
            self._woken = True
            self._loops.loop().call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        """On the loop: start the workers (the first time) and wake one for the new work.

        One: it takes events as long as their handlers finish without
        suspending; the first that suspends spreads the rest (:meth:`_spread`).
        Waking a worker per event would cost each a loop step for nothing
        when one worker can run them all.
        """
        self._woken = False  # before looking: a submit from now on wakes the loop again
        if not self._seats:  # even when closed: what is queued runs (and is released)
            for _ in range(self.threads):
                self._seat()
        self._wake_workers(1)

    def _spread(self) -> None:
        """On the loop, after a worker suspended: wake a worker for each waiting event."""
        self._spreading = False
        self._wake_workers(len(self._incoming))

    def _wake_workers(self, wanted: int) -> None:
        waiting = self._waiting
        while waiting and wanted > 0:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                wanted -= 1

    def _seat(self) -> _Seat:
        seat = _Seat()
        seat.task = self._loops.loop().create_task(self._serve(seat))
        self._seats.append(seat)
        return seat

    async def _serve(self, seat: _Seat) -> None:
        """A worker task: deliveries one after another, waiting while there are none."""
        task = seat.task
        assert task is not None
        incoming, loop = self._incoming, self._loops.loop()
        served = 0
        while not seat.retired:
            if not incoming:
                if self._closed:
                    if self._busy == 0:
                        self._drained.set()
                    return
                waiter = loop.create_future()
                self._waiting.append(waiter)
                await waiter
                continue
            function, args = incoming.popleft()
            if incoming and self._waiting and not self._spreading:
                # runs once this worker suspends (or yields): then the rest spread out
                self._spreading = True
                loop.call_soon(self._spread)
            ticket = seat.ticket = Ticket(seat, task)
            self._busy += 1
            try:
                await function(*args, ticket)
            except asyncio.CancelledError:
                if self._closed or seat.retired:
                    raise
                _uncancel(task)  # a late cancel of a delivery that had ended: go on
            except BaseException:  # a worker must not die unseen
                log.exception("%s: unexpected error in a handler task", self._name)
            finally:
                seat.ticket = None
                if not seat.retired:  # a retired one stopped counting when it was retired
                    self._busy -= 1
            served += 1
            if served % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def write_off(self, who: object) -> None:
        """Cancel the delivery of ticket ``who`` (past its time limit); thread-safe."""
        if isinstance(who, Ticket):
            loop = who.task.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._cancel, who)

    def _cancel(self, ticket: Ticket) -> None:
        """On the loop: retire and cancel the ticket's worker if it still runs that delivery."""
        seat = ticket.seat
        if seat.ticket is not ticket or seat.retired:
            return  # it ended meanwhile: its worker has moved on
        seat.retired = True
        self._busy -= 1
        self._seats.remove(seat)
        self._retired.append(seat)
        if not self._closed:
            self._seat()
        ticket.task.cancel()

    def stuck(self) -> int:
        """Retired workers still inside their handler (they ignore their cancellation)."""
        return sum(1 for seat in list(self._retired) if seat.task and not seat.task.done())

    def shutdown(self, timeout: float | None = None) -> int:
        """Let what is queued and running end, up to ``timeout`` s; cancel what still runs.

        Called off the loop (the worker's thread). Idle workers end; returns
        how many were still inside a handler at the deadline (cancelled:
        their events were released).
        """
        if self._closed:
            return 0
        self._closed = True
        loop = self._loops.current
        if loop is None or loop.is_closed() or (not self._seats and not self._incoming):
            return 0
        loop.call_soon_threadsafe(self._release_waiting)
        if self._drained.wait(timeout):
            return 0
        left = [seat for seat in list(self._seats) if seat.ticket is not None]
        for seat in left:
            cancel(seat.task)
        return len(left)

    def _release_waiting(self) -> None:
        """On the loop: idle workers wake up, see the pool closed and end."""
        if not self._seats:  # never started: start them for what is queued
            self._wake()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)


def _uncancel(task: asyncio.Task[None]) -> None:
    """Forget a cancellation that was caught (3.11+: the task is not "cancelling" any more)."""
    uncancel, cancelling = getattr(task, "uncancel", None), getattr(task, "cancelling", None)
    if uncancel is not None and cancelling is not None:
        while cancelling():
            uncancel()


def cancel(who: object) -> None:
    """Cancel ``who``'s task on its own loop (from any thread)."""
    who = task_of(who)
    if who is not None and not who.done():
        loop = who.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(who.cancel)


def task_of(who: object) -> asyncio.Task[Any] | None:
    """The task of ``who``: a :class:`Ticket`'s, or ``who`` itself if it is one."""
    if isinstance(who, Ticket):
        return who.task
    return who if isinstance(who, asyncio.Task) else None


def stack_of_task(who: object) -> str:
    """Where ``who``'s task waits now (for the failure record of a timed-out event)."""
    who = task_of(who)
    if who is None:
        return ""
    try:
        frames = who.get_stack()
    except Exception:  # noqa: BLE001 - read from another thread: best effort
        return ""
    lines = [
        f'  File "{f.f_code.co_filename}", line {f.f_lineno}, in {f.f_code.co_name}\n'
        for f in frames
    ]
    return "Handler task when its time limit expired:\n" + "".join(lines) if lines else ""


class LoopWatch:
    """Notice an event loop blocked past ``threshold`` s, and name what blocks it.

    The loop beats every :data:`BEAT` s (a timer callback noting the time and
    its thread); :meth:`check`, called from the watchdog's thread, finds the
    last beat overdue and asks ``describe(task)`` who the task running on
    the loop is (a handler of ours, or None). One WARNING per stall.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        describe: Callable[[asyncio.Task[Any]], str | None],
        *,
        threshold: float = DEFAULT_LOOP_LAG,
    ) -> None:
        self.loop = loop
        self.threshold = threshold
        self._describe = describe
        self._beat = time.monotonic()
        self._thread = 0
        self._reported = 0.0  # the beat a stall was reported for
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False
        #: Stalls seen (for tests and health).
        self.stalls = 0

    def start(self) -> LoopWatch:
        self.loop.call_soon_threadsafe(self._tick)
        return self

    def stop(self) -> None:
        self._stopped = True
        timer = self._timer
        if timer is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(timer.cancel)

    def _tick(self) -> None:
        self._beat = time.monotonic()
        self._thread = threading.get_ident()
        if not self._stopped:
            self._timer = self.loop.call_later(BEAT, self._tick)

    def overdue(self) -> float:
        """Seconds the loop is past its threshold without a beat (0: it beats)."""
        late = time.monotonic() - self._beat - BEAT
        return late if not self._stopped and late >= self.threshold else 0.0

    def check(self, now: float) -> float:
        """Seconds the loop is overdue (0 when beating); warns once per stall."""
        beat = self._beat
        late = now - beat - BEAT
        if self._stopped or late < self.threshold or self._reported == beat:
            return 0.0 if late < self.threshold else late
        self._reported = beat
        self.stalls += 1
        task = asyncio.current_task(self.loop)
        who = self._describe(task) if task is not None else None
        where = _where(self._thread)
        if who is not None:
            log.warning(
                "the event loop has been blocked for %.1fs by %s%s: an async def handler "
                "must await, never block (time.sleep, blocking I/O, heavy CPU); run blocking "
                "calls with 'await asyncio.to_thread(...)' or make the handler a plain def",
                late,
                who,
                where,
            )
        else:
            log.warning(
                "the event loop running hubbub's async handlers has been blocked for %.1fs "
                "by code that is not a handler%s: handlers on it wait meanwhile",
                late,
                where,
            )
        return late


def _where(ident: int) -> str:
    """`` at file:line`` of the innermost frame of thread ``ident``, or ""."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    summary = traceback.extract_stack(frame, limit=1)[-1]
    return f" at {summary.filename}:{summary.lineno} ({summary.name})"
