"""Hand deliveries from the I/O thread to a subscriber's handler threads.

Why not ``ThreadPoolExecutor.submit``: per delivery it builds a Future and a
work item and takes two Python-level semaphore/condition round trips, which
cost more than decoding the message and running a trivial handler
(``bench/README.md``). Here the I/O thread puts ``(function, arguments)`` on
one C-implemented ``SimpleQueue`` and never blocks; ``threads`` handler
threads take items in arrival order, one at a time, so a slow handler holds
up only its own thread. An item is never dropped: :meth:`shutdown` lets the
threads finish everything queued before it.

A thread stuck in a handler past its time limit is *written off*
(:meth:`Dispatcher.write_off`): a new thread takes its place at once, so the
subscriber keeps its concurrency, and the stuck one leaves when (if ever) its
handler returns. Handler threads are daemon threads: a stuck one never keeps
the process alive.
"""

from __future__ import annotations

import logging
import threading
import time
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
        #: Written-off threads still inside a handler, by thread ident.
        self._retired: dict[int, threading.Thread] = {}
        self._started = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        """Queue ``function(*args)`` for a handler thread; starts the threads on first use."""
        if not self._workers:
            self._start()
        self._queue.put((function, args))

    def write_off(self, ident: int) -> None:
        """Give up on the thread ``ident`` (stuck in a handler) and start one in its place.

        Thread-safe. The written-off thread runs nothing more: it leaves as
        soon as its current item returns.
        """
        with self._lock:
            thread = next((t for t in self._workers if t.ident == ident), None)
            if thread is None:
                return
            self._workers.remove(thread)
            self._retired[ident] = thread
            if not self._closed:
                self._spawn()

    def stuck(self) -> int:
        """Written-off threads still inside their handler."""
        with self._lock:
            return sum(1 for t in self._retired.values() if t.is_alive())

    def shutdown(self, timeout: float | None = None) -> int:
        """Run what is queued, then stop the threads; wait up to ``timeout`` s (None: no limit).

        Idempotent. Returns how many threads are still inside a handler
        (written-off ones included); being daemon threads, they do not keep
        the process alive.
        """
        with self._lock:
            workers, self._closed = list(self._workers), True
        for _ in workers:
            self._queue.put(_STOP)
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._lock:
            alive = [t for t in (*workers, *self._retired.values()) if t.is_alive()]
            self._workers = []  # a submit after this raises
        return len(alive)

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: submit after shutdown")
            if self._workers:
                return
            for _ in range(self.threads):
                self._spawn()

    def _spawn(self) -> None:
        """Start one handler thread (holding ``_lock``)."""
        worker = threading.Thread(
            target=self._serve, name=f"{self._name}_{self._started}", daemon=True
        )
        self._started += 1
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
            if self._retired and self._leave():
                return

    def _leave(self) -> bool:
        """True (and forgotten) when this thread was written off while in its item."""
        ident = threading.get_ident()
        with self._lock:
            return self._retired.pop(ident, None) is not None
