"""A clock that moves only when a test says so.

The in-memory hub holds delayed events and retries against this clock, so a
test can let three days pass in a millisecond: ``hub.clock.advance(days=3)``.
Time moves in steps: the clock stops at every moment something is due
(a delayed event, a retry) and lets its listeners act at that moment before
moving on, so what happens at day 1 can schedule something for day 2 and it
still fires within the same ``advance``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol

from hubbub.errors import HubbubError
from hubbub.topology.durations import parse_duration

#: Stops one ``advance`` may make before it gives up (something keeps scheduling itself).
MAX_STEPS = 100_000


class ClockListener(Protocol):
    """Something that holds work for a time (the in-memory hub)."""

    def next_due(self) -> float | None:
        """Epoch seconds of the earliest held work, or None."""

    def on_time(self) -> None:
        """Do everything due at the clock's current time."""


class FakeClock:
    """Epoch time that stands still until :meth:`advance` (not thread-safe: tests drive it)."""

    def __init__(self, start: datetime | float | None = None) -> None:
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError("start must be timezone-aware (e.g. tzinfo=timezone.utc)")
            start = start.timestamp()
        self._now = float(datetime.now(timezone.utc).timestamp() if start is None else start)
        self._listeners: list[ClockListener] = []

    def time(self) -> float:
        """Now, in epoch seconds (like :func:`time.time`)."""
        return self._now

    def now(self) -> datetime:
        """Now, as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self._now, timezone.utc)

    def attach(self, listener: ClockListener) -> None:
        """Have ``listener`` act at every step of :meth:`advance`."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def advance(
        self,
        by: float | timedelta | str = 0,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> None:
        """Move time forward, stopping at each moment something is due.

        ``by`` is seconds, a timedelta or a duration string (``"90s"``,
        ``"3d"``); the keyword units add to it. Work due now runs first.
        """
        step = (
            parse_duration(by)
            + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
        )
        if step < 0:
            raise ValueError(f"a clock cannot go back ({step:g} s)")
        target = self._now + step
        self._fire()
        for _ in range(MAX_STEPS):
            due = min((d for d in self._due_times() if d <= target), default=None)
            if due is None:
                self._now = target
                self._fire()
                return
            self._now = max(self._now, due)
            self._fire()
        raise HubbubError(
            f"the clock stopped {MAX_STEPS} times within one advance: "
            "something keeps scheduling work for the same moment"
        )

    def _due_times(self) -> list[float]:
        return [d for d in (listener.next_due() for listener in self._listeners) if d is not None]

    def _fire(self) -> None:
        for listener in list(self._listeners):
            listener.on_time()


class WallClock:
    """The real clock with :class:`FakeClock`'s reading methods (the live hub's ``clock``)."""

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)
