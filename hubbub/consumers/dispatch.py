"""Hand deliveries from the I/O thread to a subscriber's handler threads.

Why not ``ThreadPoolExecutor.submit``: per delivery it builds a Future and a
work item and takes two Python-level semaphore/condition round trips, which
cost more than decoding the message and running a trivial handler
(``bench/README.md``). Here the I/O thread puts ``(function, arguments)`` on
one C-implemented ``SimpleQueue`` and never blocks; ``threads`` handler
threads take items in arrival order, one at a time, so a slow handler holds
up only its own thread. An item is never dropped: :meth:`shutdown` lets the
threads finish everything queued before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

log = logging.getLogger("hubbub.consumers")

_STOP = object()


class Dispatcher:
    """A fixed set of handler threads fed from one queue (submit from any thread)."""

    def __init__(self, threads: int, *, name: str) -> None:
        self.threads = threads
        self._name = name
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        """Queue ``function(*args)`` for a handler thread; starts the threads on first use."""
        if not self._workers:
            self._start()
        self._queue.put((function, args))

    def shutdown(self) -> None:
        """Run what is queued, then stop the threads and wait for them (idempotent)."""
        with self._lock:
            workers, self._closed = self._workers, True
        for _ in workers:
            self._queue.put(_STOP)
        for worker in workers:
            worker.join()
        self._workers = []

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: submit after shutdown")
            if self._workers:
                return
            for index in range(self.threads):
                worker = threading.Thread(target=self._serve, name=f"{self._name}_{index}")
                worker.start()
                self._workers.append(worker)

    def _serve(self) -> None:
        get = self._queue.get
        while (item := get()) is not _STOP:
            function, args = item
            try:
                function(*args)
            except BaseException:  # a handler thread must survive anything
                log.exception("%s: unexpected error in a handler thread", self._name)
