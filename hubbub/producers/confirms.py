"""Waiting for the confirms of many messages at once.

A :class:`~concurrent.futures.Future` per message costs a lock, a condition
and a wake-up each; for :meth:`Publisher.publish_many` that was a large part
of the publisher's CPU. A :class:`ConfirmGroup` counts the confirms of a
whole batch instead: the I/O thread settles each message into it (a counter
under a lock), and the publishing thread sleeps on one event until all are
settled. The guarantee is unchanged: a message counts as published only on
the broker's confirm; a nack, a lost channel or a timeout marks it failed.
"""

from __future__ import annotations

import threading


class ConfirmGroup:
    """The outcome of ``size`` messages, each settled exactly once (thread-safe)."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._settled = bytearray(size)
        self._lock = threading.Lock()
        self._done = threading.Event()
        #: Positions (in the batch) of the messages that were not confirmed.
        self.failed: list[int] = []
        if size == 0:
            self._done.set()

    @property
    def left(self) -> int:
        """Messages not settled yet."""
        return self._left

    def settle(self, index: int, confirmed: bool) -> None:
        """Message ``index`` was confirmed, or failed (nack, lost channel, refused)."""
        with self._lock:
            self._settled[index] = 1
            if not confirmed:
                self.failed.append(index)
            self._left -= 1
            finished = self._left == 0
        if finished:
            self._done.set()

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
        while not self._done.wait(idle_timeout):
            if self._left == seen:
                return False
            seen = self._left
        return True
