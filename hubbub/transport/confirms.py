"""Waiting for the confirms of one message or many at once.

A :class:`~concurrent.futures.Future` per message costs a lock, a condition
and a wake-up each, all in Python; for :meth:`Publisher.publish_many` that
was a large part of the publisher's CPU, and for many threads each calling
:meth:`Publisher.publish` it was most of it. A :class:`ConfirmGroup` counts
the confirms of a batch (of one, for ``publish``) instead: the I/O thread
settles each message into it (a counter under a lock), and the publishing
thread sleeps on one bare lock, released when the last is settled: the
cheapest wake-up CPython has. The guarantee is unchanged: a message counts
as published only on the broker's confirm; a nack, a lost channel or a
timeout marks it failed, with the reason.
"""

from __future__ import annotations

import threading


class ConfirmGroup:
    """The outcome of ``size`` messages, each settled exactly once (thread-safe)."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._settled = bytearray(size)
        self._lock = threading.Lock()
        self._done = threading.Lock()  # held until every message is settled
        if size:
            self._done.acquire()
        #: Why each message that was not confirmed failed, by position in the batch.
        self.errors: dict[int, BaseException] = {}

    @property
    def failed(self) -> list[int]:
        """Positions (in the batch) of the messages that were not confirmed."""
        return sorted(self.errors)

    @property
    def left(self) -> int:
        """Messages not settled yet."""
        return self._left

    def claim(self, index: int) -> bool:
        """Always True: a batch waited for by a thread is never withdrawn."""
        return True

    def settle(self, index: int, error: BaseException | None) -> None:
        """Message ``index`` was confirmed (``error`` None), or failed (nack, lost channel...)."""
        with self._lock:
            if self._settled[index]:
                return
            self._settled[index] = 1
            if error is not None:
                self.errors[index] = error
            self._left -= 1
            finished = self._left == 0
        if finished:
            self._done.release()

    def unsettled(self) -> list[int]:
        """Positions of the messages with no outcome yet (after a timeout: maybe stored)."""
        with self._lock:
            return [i for i, done in enumerate(self._settled) if not done]

    def wait(self, idle_timeout: float) -> bool:
        """Block until every message is settled; False if none settled for ``idle_timeout`` s.

        The timeout counts from the last progress, not from the start: a big
        batch may take longer than ``idle_timeout`` as long as confirms keep
        coming.
        """
        seen = self._left
        while not self._done.acquire(timeout=idle_timeout):
            if self._left == seen:
                return False
            seen = self._left
        self._done.release()  # done for good: a later wait returns at once
        return True
