"""How ``apublish`` reaches the transport: an event loop's messages in batches, both ways.

Awaiting each message's confirm through a :class:`concurrent.futures.Future`
costs, per call, that future, a ``call_soon_threadsafe`` (a write to the
loop's self-pipe) when the I/O thread settles it, and a timer for its
timeout: a thousand tasks each awaiting :meth:`Publisher.apublish` ran at
under half the rate of one :meth:`Publisher.publish_many`. A
:class:`LoopSender` (one per publisher and event loop) pays those per
batch instead:

- the messages of every ``apublish`` made during one loop iteration go to
  the transport in one ``send_many`` (one per :data:`CHUNK` when more come:
  the first ones are on their way while the loop still takes the others),
  so concurrent callers share one connection's confirm window;
- it is the :class:`~hubbub.transport.base.Confirms` of those messages: the
  I/O thread queues each outcome and wakes the loop at most once until the
  loop has taken what was queued, and the loop resolves each caller's
  asyncio future;
- one timer fails whatever is not confirmed ``confirm_timeout`` s after its
  batch was handed over;
- without a live connection the batch waits for one connect in the loop's
  default executor, shared by every caller, so the loop never blocks.

The guarantee is :meth:`Publisher.publish`'s: a future resolves only on the
broker's confirm. A caller cancelled before the I/O thread took its message
withdraws it (it is never sent); after that it may or may not be stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from hubbub.errors import PublishError
from hubbub.message import Outbound
from hubbub.transport.base import Pending, PublisherTransport

#: Seconds a timeout may fire late: expiries this close together share one timer run.
TICK = 0.01
#: Messages one loop iteration queues before they are handed over without waiting for its end.
CHUNK = 256
_ABSENT = object()


class LoopSender:
    """Publishing from one event loop through one transport, batched.

    :meth:`submit`, :meth:`withdraw` and the rest run on the loop's thread;
    :meth:`claim` and :meth:`settle` (its :class:`~hubbub.transport.base.Confirms`
    side) on any thread. Holds its loop weakly, so a publisher that
    outlives many loops (``asyncio.run`` after ``asyncio.run``) keeps none alive.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: PublisherTransport,
        *,
        confirm_timeout: float,
        timeout_text: Callable[[], str],
    ) -> None:
        self._loop = weakref.ref(loop)
        self._transport = transport
        self._confirm_timeout = confirm_timeout
        self._timeout_text = timeout_text
        self._next = 0  # the number of the next message (its Pending's index)
        #: Not handed over yet. Pending from the start, not (number, message) pairs: each
        #: object that lives until the hand-over is one more for the cyclic GC to scan.
        self._buffer: list[Pending] = []
        self._flush_due = False
        self._connecting = False
        #: Messages whose caller waits, by number (loop thread only).
        self._waiting: dict[int, asyncio.Future[None]] = {}
        #: Messages handed over that the I/O thread has not taken: popping one is
        #: what claims it (I/O thread) or withdraws it (loop), whichever comes first.
        self._unclaimed: dict[int, None] = {}
        #: Numbers the I/O thread settled, oldest first; the failed ones' errors
        #: are in _errors (a confirm costs no tuple: see _buffer).
        self._settled: deque[int] = deque()
        self._errors: dict[int, BaseException] = {}
        self._wake_due = False
        #: (deadline, first, end) of each batch handed over, oldest first.
        self._deadlines: deque[tuple[float, int, int]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop this sender serves (None once it is gone)."""
        return self._loop()

    # -- the loop's thread ----------------------------------------------------

    def submit(self, outbounds: Sequence[Outbound]) -> tuple[int, list[asyncio.Future[None]]]:
        """Queue ``outbounds`` for the next hand-over; their first number and futures.

        Each future resolves on its message's confirm, or fails with why not
        (PublishError; BrokerConnectionError when nothing could be sent).
        """
        loop = self._running_loop()
        first = self._next
        futures = []
        for number, outbound in enumerate(outbounds, first):
            future = loop.create_future()
            self._waiting[number] = future
            self._buffer.append(Pending(outbound, None, self, number))
            futures.append(future)
        self._next = first + len(futures)
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)
        return first, futures

    def submit_one(self, outbound: Outbound) -> tuple[int, asyncio.Future[None]]:
        """:meth:`submit` of one message (what each ``apublish`` pays: no lists)."""
        loop = self._loop()
        assert loop is not None  # it runs this very code
        future = loop.create_future()
        number = self._next
        self._next = number + 1
        self._waiting[number] = future
        buffer = self._buffer
        buffer.append(Pending(outbound, None, self, number))
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)
        elif len(buffer) >= CHUNK:
            self._hand_over_early()
        return number, future

    def _hand_over_early(self) -> None:
        """Hand over a full chunk now, while this iteration's callers keep coming.

        A thousand callers take the loop a dozen milliseconds to queue, during
        which nothing would be in flight; handed over in chunks, the I/O
        thread and the broker work through the first ones meanwhile.
        ``time.sleep(0)`` gives the I/O thread the GIL now rather than after
        a switch interval (publish_many does the same between its chunks).
        """
        if self._connecting or not self._transport.live:
            return  # the flush connects first, off the loop
        self._hand_over()
        time.sleep(0)

    def withdraw(self, first: int, end: int) -> None:
        """Forget messages ``first`` to ``end`` - 1 (their callers were cancelled).

        Those still buffered, or handed over but not taken by the I/O
        thread, are never sent; the others may or may not be stored.
        """
        for number in range(first, end):
            self._waiting.pop(number, None)
            self._unclaimed.pop(number, None)

    def _flush(self) -> None:
        self._flush_due = False
        if not self._buffer or self._connecting:
            return
        if self._transport.live:
            self._hand_over()
            return
        # Connecting blocks for a network round trip or more: not on the loop.
        self._connecting = True
        loop = self._running_loop()
        loop.run_in_executor(None, self._transport.connect).add_done_callback(self._connected)

    def _connected(self, done: asyncio.Future[None]) -> None:
        self._connecting = False
        error = None if done.cancelled() else done.exception()
        if error is None:
            self._hand_over()
            return
        buffered, self._buffer = self._buffer, []
        for message in buffered:
            self._fail(message.index, error)

    def _hand_over(self) -> None:
        """Give the transport every buffered message still awaited, in one ``send_many``."""
        buffered, self._buffer = self._buffer, []
        waiting, unclaimed = self._waiting, self._unclaimed
        pending = []
        for message in buffered:
            number = message.index
            future = waiting.get(number)
            if future is not None and not future.done():  # done: its caller was just cancelled
                unclaimed[number] = None
                pending.append(message)
        if not pending:
            return
        first, end = pending[0].index, pending[-1].index + 1
        try:
            self._transport.send_many(pending)
        except Exception as exc:  # noqa: BLE001 - nothing was sent: each caller raises it
            for message in pending:
                self._unclaimed.pop(message.index, None)
                self._fail(message.index, exc)
            return
        loop = self._running_loop()
        self._deadlines.append((loop.time() + self._confirm_timeout, first, end))
        if self._timer is None:
            self._timer = loop.call_at(self._deadlines[0][0], self._expire)

    def _resolve(self) -> None:
        """Give each caller whose message was settled its outcome."""
        self._wake_due = False
        settled, waiting, errors = self._settled, self._waiting, self._errors
        while settled:
            number = settled.popleft()
            error = errors.pop(number, None) if errors else None
            future = waiting.pop(number, None)
            if future is None or future.done():  # withdrawn, or timed out
                continue
            if error is None:
                future.set_result(None)
            else:
                self._unclaimed.pop(number, None)  # a message failed before it was taken
                future.set_exception(error)
        if not waiting and self._timer is not None:  # nothing left to time out
            self._timer.cancel()
            self._timer = None
            self._deadlines.clear()

    def _expire(self) -> None:
        """Fail what is still unconfirmed ``confirm_timeout`` s after its hand-over."""
        self._timer = None
        self._resolve()  # a confirm already queued is not a timeout
        loop = self._running_loop()
        now = loop.time()
        error = None
        while self._deadlines and self._deadlines[0][0] <= now:
            _, first, end = self._deadlines.popleft()
            # Numbers are awaited in order: start from the oldest still awaited, so a
            # batch whose confirms all came costs nothing to look through.
            oldest = next(iter(self._waiting), end)
            for number in range(max(first, oldest), end):
                if number in self._waiting:
                    error = error or PublishError(self._timeout_text())
                    self._unclaimed.pop(number, None)  # not taken yet: never sent
                    self._fail(number, error)
        if self._deadlines:
            self._timer = loop.call_at(max(self._deadlines[0][0], now + TICK), self._expire)

    def _fail(self, number: int, error: BaseException) -> None:
        future = self._waiting.pop(number, None)
        if future is not None and not future.done():
            future.set_exception(error)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop()
        assert loop is not None  # it runs this very code
        return loop

    # -- any thread: the transport's Confirms --------------------------------

    def claim(self, index: int) -> bool:
        # dict.pop is atomic: either this or withdraw takes the entry, never both.
        return self._unclaimed.pop(index, _ABSENT) is not _ABSENT

    def settle(self, index: int, error: BaseException | None) -> None:
        if error is not None:
            self._errors[index] = error  # before the number: _resolve looks it up by that
        self._settled.append(index)
        if self._wake_due:  # the loop has not taken the last outcomes yet: it takes these too
            return
        self._wake_due = True
        loop = self._loop()
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(self._resolve)
