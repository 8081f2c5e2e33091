"""Prometheus metrics of one consumer process, gathered as an :class:`Observer`.

Every metric lives in the registry this observer owns (not prometheus-client's
global one), so several workers in one process, or one test after another,
never share counters. Labels are the subscriber and, for outcome counters,
the event's topic: topics come from the topology's publishers, a bounded set.

Counters (``_total`` is added by prometheus-client):

``hubbub_events_handled``        handler returned, event acked
``hubbub_events_failed``         handler raised, ran past its time limit, or the
                                 message was malformed
``hubbub_events_retried``        failed, and its retry copy was confirmed
``hubbub_events_dead_lettered``  failed for good, its dead-letter copy confirmed
``hubbub_events_released``       failed, but the copy could not be published:
                                 released to its queue, to be redelivered
``hubbub_events_skipped``        an idempotent subscriber had handled it already:
                                 skipped by its inbox (and acked: in handled too)
``hubbub_connections``           connections opened (1 + reconnects)

Gauges: ``hubbub_events_in_flight`` (delivered, not yet acked or released),
``hubbub_connected`` (0/1), and, polled by :mod:`hubbub.consumers.depth`,
``hubbub_queue_messages`` / ``hubbub_dead_letter_messages`` (ready messages)
and ``hubbub_queue_consumers``. Histogram: ``hubbub_handler_duration_seconds``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hubbub.consumers.handling import Outcome
from hubbub.consumers.observer import Observer

#: Handler durations from 5 ms to 5 min.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

_BY_EVENT = ("subscriber", "topic")


class Metrics(Observer):
    """Counts outcomes, durations and events in flight; thread-safe like prometheus-client."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.handled = Counter("hubbub_events_handled", "Events handled", _BY_EVENT, registry=r)
        self.failed = Counter("hubbub_events_failed", "Handler failures", _BY_EVENT, registry=r)
        self.retried = Counter(
            "hubbub_events_retried", "Failed events scheduled for retry", _BY_EVENT, registry=r
        )
        self.dead_lettered = Counter(
            "hubbub_events_dead_lettered", "Events dead-lettered", _BY_EVENT, registry=r
        )
        self.released = Counter(
            "hubbub_events_released",
            "Failed events released to their queue (copy not confirmed)",
            _BY_EVENT,
            registry=r,
        )
        self.skipped_ = Counter(
            "hubbub_events_skipped",
            "Events an idempotent subscriber had handled already, skipped by its inbox",
            _BY_EVENT,
            registry=r,
        )
        self.duration = Histogram(
            "hubbub_handler_duration_seconds",
            "Handler run time",
            ["subscriber"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "hubbub_events_in_flight", "Delivered, not yet settled", ["subscriber"], registry=r
        )
        self.connected_ = Gauge("hubbub_connected", "1 while connected to the broker", registry=r)
        self.connections = Counter("hubbub_connections", "Connections opened", registry=r)
        self.queue_messages = Gauge(
            "hubbub_queue_messages",
            "Ready events in the subscriber's queue",
            ["subscriber"],
            registry=r,
        )
        self.dead_letter_messages = Gauge(
            "hubbub_dead_letter_messages",
            "Events in the subscriber's dead-letter queue",
            ["subscriber"],
            registry=r,
        )
        self.queue_consumers = Gauge(
            "hubbub_queue_consumers",
            "Consumers on the subscriber's queue (all processes)",
            ["subscriber"],
            registry=r,
        )

        #: Labelled series already looked up: ``labels()`` validates and locks on
        #: every call, which cost more than consuming a trivial event.
        self._series: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = metric.labels(*labels)
        return child

    def declare(self, subscribers: list[str]) -> None:
        """Show every subscriber's series at zero before its first event."""
        for name in subscribers:
            self._child(self.in_flight, name)
            self._child(self.duration, name)

    # -- Observer hooks -------------------------------------------------------

    def started(self, subscriber: str) -> None:
        self._child(self.in_flight, subscriber).inc()

    def settled(self, subscriber: str) -> None:
        self._child(self.in_flight, subscriber).dec()

    def skipped(self, subscriber: str, topic: str) -> None:
        self._child(self.skipped_, subscriber, topic).inc()

    def finished(self, subscriber: str, outcome: Outcome, seconds: float) -> None:
        self._child(self.duration, subscriber).observe(seconds)
        if outcome.action == "ack":
            self._child(self.handled, subscriber, outcome.topic).inc()
            return
        labels = (subscriber, outcome.topic)
        self.failed.labels(*labels).inc()
        counter = {
            "retry": self.retried,
            "dead-letter": self.dead_lettered,
            "release": self.released,
        }[outcome.action]
        counter.labels(*labels).inc()

    def connected(self) -> None:
        self.connected_.set(1)
        self.connections.inc()

    def disconnected(self) -> None:
        self.connected_.set(0)

    # -- queue depth (from the poller) -------------------------------------------

    def depth(self, subscriber: str, ready: int, consumers: int, dead: int | None) -> None:
        """Record a poll of ``subscriber``'s queue (and DLQ, unless it is missing)."""
        self.queue_messages.labels(subscriber).set(ready)
        self.queue_consumers.labels(subscriber).set(consumers)
        if dead is not None:
            self.dead_letter_messages.labels(subscriber).set(dead)
