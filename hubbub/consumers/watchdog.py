"""Handler time limits: one watchdog thread per worker, no timer per event.

Each handler thread notes the start time of the delivery it runs in its
subscriber's *running* map (one dict store and one pop per delivery, see
:meth:`hubbub.consumers.worker.Worker._work`). The watchdog wakes a few times
per shortest limit, looks at those start times, and hands every delivery
whose handler ran past its subscriber's ``timeout`` to the worker, which
fails it like a raised :class:`HandlerTimeoutError` and writes the thread off.

Who settles a delivery is decided by one atomic ``dict.pop`` on its key:
whichever of the handler thread and the watchdog pops it first owns it, so a
late result is ignored and nothing is acked twice.

Why a limit at all: Python cannot kill a thread, and a handler that never
returns otherwise holds its thread and its event forever, until the broker's
``consumer_timeout`` (30 min by default) closes the channel and gives back
every prefetched event, each then one delivery closer to its delivery limit.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable

from hubbub.errors import HubbubError
from hubbub.topology.durations import format_duration

#: Bounds of the watchdog's period, in seconds (a tenth of the shortest limit).
MIN_PERIOD, MAX_PERIOD = 0.05, 1.0


class HandlerTimeoutError(HubbubError):
    """A handler ran past its subscriber's time limit; its event was failed without it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {format_duration(seconds)}")
        self.seconds = seconds


def period(limits: list[float]) -> float:
    """How often to look: a tenth of the shortest limit, within the bounds."""
    return min(MAX_PERIOD, max(MIN_PERIOD, min(limits, default=MAX_PERIOD) / 10))


def stack_of(ident: int) -> str:
    """Where thread ``ident`` is now (for the failure record), or "" if it is gone."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    return "Handler stack when its time limit expired:\n" + "".join(traceback.format_stack(frame))


class Watchdog:
    """Call ``check(now)`` every ``interval`` s on a daemon thread until :meth:`stop`."""

    def __init__(self, check: Callable[[float], None], *, interval: float, name: str) -> None:
        self._check = check
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._check(time.perf_counter())
