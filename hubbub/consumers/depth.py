"""Poll the depth of subscriber queues and their dead-letter queues.

Depth is what autoscaling keys on, and the broker only tells it on request.
A passive ``queue.declare`` answers with the ready-message and consumer
counts over AMQP, so no management plugin is needed. The poller has its own
connection on its own thread (never the consumer's I/O thread), polls every
``interval`` seconds, and survives broker outages: a failed poll is logged
once and retried at the next interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from hubbub.errors import HubbubError
from hubbub.topology.names import HubNames
from hubbub.transport import BrokerSession, open_session

log = logging.getLogger("hubbub.consumers")

#: Seconds between polls.
DEFAULT_INTERVAL = 15.0

#: ``report(subscriber, ready, consumers, dead_letters or None)``.
Report = Callable[[str, int, int, "int | None"], None]


class QueueMissingError(HubbubError):
    """A subscriber's queue is missing: its depth cannot be polled (apply the topology)."""


class DepthPoller:
    """A daemon thread reporting queue depths until :meth:`stop`."""

    def __init__(
        self,
        names: HubNames,
        subscribers: Sequence[str],
        urls: Sequence[str],
        report: Report,
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.names = names
        self.subscribers = list(subscribers)
        self.urls = list(urls)
        self.report = report
        self.interval = interval
        self._stop = threading.Event()
        self._session: BrokerSession | None = None
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="hubbub-depth", daemon=True)

    def start(self) -> DepthPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5)

    def poll_once(self) -> None:
        """Poll every subscriber now (raises HubbubError on failure).

        A missing subscriber queue fails the poll; a missing dead-letter queue
        reports None and the poll goes on.
        """
        if self._session is None or not self._session.is_open:
            self._session = open_session(self.urls, name="hubbub consume (queue depth)")
        for name in self.subscribers:
            queue = self._session.queue_counts(self.names.queue(name))
            if queue is None:
                raise QueueMissingError(f"queue {self.names.queue(name)!r} does not exist")
            dead = self._session.queue_counts(self.names.dead_letter_queue(name))
            self.report(name, queue.ready, queue.consumers, None if dead is None else dead.ready)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
                if self._failing:
                    log.info("queue depth polling works again")
                self._failing = False
            except HubbubError as exc:
                if not self._failing:
                    log.warning("cannot poll queue depth (will retry): %s", exc)
                self._failing = True
                self._drop_connection()
            self._wait()
        self._drop_connection()

    def _wait(self) -> None:
        """Sleep ``interval`` s, answering heartbeats, waking early on stop."""
        waited = 0.0
        while waited < self.interval and not self._stop.is_set():
            step = min(0.5, self.interval - waited)
            session = self._session
            try:
                if session is not None and session.is_open:
                    session.pump(step)
                else:
                    self._stop.wait(step)
            except HubbubError:
                self._drop_connection()
            waited += step

    def _drop_connection(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
