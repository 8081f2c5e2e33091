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

import pika
import pika.exceptions as pe
from pika.adapters.blocking_connection import BlockingChannel

from hubbub.connection import connect
from hubbub.errors import HubbubError
from hubbub.topology.names import HubNames

log = logging.getLogger("hubbub.consumers")

#: Seconds between polls.
DEFAULT_INTERVAL = 15.0

#: ``report(subscriber, ready, consumers, dead_letters or None)``.
Report = Callable[[str, int, int, "int | None"], None]


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
        self._connection: pika.BlockingConnection | None = None
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="hubbub-depth", daemon=True)

    def start(self) -> DepthPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5)

    def poll_once(self) -> None:
        """Poll every subscriber now (raises HubbubError or pika errors on failure)."""
        if self._connection is None or not self._connection.is_open:
            self._connection = connect(self.urls, name="hubbub consume (queue depth)")
        channel = self._connection.channel()
        try:
            for name in self.subscribers:
                ready, consumers = _count(channel, self.names.queue(name))
                try:
                    dead: int | None = _count(channel, self.names.dead_letter_queue(name))[0]
                except pe.ChannelClosedByBroker:  # no DLQ (404): keep polling the rest
                    channel = self._connection.channel()
                    dead = None
                self.report(name, ready, consumers, dead)
        finally:
            if channel.is_open:
                channel.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
                if self._failing:
                    log.info("queue depth polling works again")
                self._failing = False
            except (HubbubError, pe.AMQPError, OSError) as exc:
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
            connection = self._connection
            try:
                if connection is not None and connection.is_open:
                    connection.process_data_events(time_limit=step)
                else:
                    self._stop.wait(step)
            except (pe.AMQPError, OSError):
                self._drop_connection()
            waited += step

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pe.AMQPError, OSError):
                log.debug("closing the depth connection failed", exc_info=True)


def _count(channel: BlockingChannel, queue: str) -> tuple[int, int]:
    ok = channel.queue_declare(queue, passive=True).method
    return int(ok.message_count), int(ok.consumer_count)
