"""An inbox store in this process's memory: for tests and the in-memory hub."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from hubbub.inbox.base import DEFAULT_BUSY_TIMEOUT, InboxBusyError

#: Seconds between looks at a busy entry from an ``async def`` handler (it must not block its loop).
_POLL = 0.01


class MemoryStore:
    """Handled events in a set, for one process: lost when it exits.

    It gives a test (on the in-memory hub or against the broker) the inbox's
    exact behaviour: skip what was handled, record on return, forget on an
    exception, make a second attempt of an event wait for the first.
    """

    def __init__(self, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.busy_timeout = busy_timeout
        self._handled: set[tuple[str, str]] = set()
        self._claimed: set[tuple[str, str]] = set()
        self._changed = threading.Condition()

    def handled(self, subscriber: str) -> set[str]:
        """The ids of the events ``subscriber`` handled (recorded so far)."""
        with self._changed:
            return {event_id for name, event_id in self._handled if name == subscriber}

    @contextmanager
    def claim(self, subscriber: str, event_id: str) -> Iterator[bool]:
        key = (subscriber, event_id)
        deadline = time.monotonic() + self.busy_timeout
        with self._changed:
            while key in self._claimed:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise InboxBusyError(subscriber, event_id, self.busy_timeout)
                self._changed.wait(left)
            new = self._take(key)
        with self._held(key, new) as result:
            yield result

    @asynccontextmanager
    async def aclaim(self, subscriber: str, event_id: str) -> AsyncIterator[bool]:
        key = (subscriber, event_id)
        deadline = time.monotonic() + self.busy_timeout
        while True:
            with self._changed:
                if key not in self._claimed:
                    new = self._take(key)
                    break
            if time.monotonic() >= deadline:
                raise InboxBusyError(subscriber, event_id, self.busy_timeout)
            await asyncio.sleep(_POLL)
        with self._held(key, new) as result:
            yield result

    @contextmanager
    def _held(self, key: tuple[str, str], new: bool) -> Iterator[bool]:
        """The handler's run once ``key`` is taken (``new``) or found handled: recorded
        when it returns, released unrecorded when it raises."""
        if not new:
            yield False
            return
        try:
            yield True
        except BaseException:
            self._release(key, handled=False)
            raise
        self._release(key, handled=True)

    def _take(self, key: tuple[str, str]) -> bool:
        """Claim ``key`` unless it is handled (the caller holds the condition's lock)."""
        if key in self._handled:
            return False
        self._claimed.add(key)
        return True

    def _release(self, key: tuple[str, str], *, handled: bool) -> None:
        with self._changed:
            self._claimed.discard(key)
            if handled:
                self._handled.add(key)
            self._changed.notify_all()

    def __repr__(self) -> str:
        return "MemoryStore()"
