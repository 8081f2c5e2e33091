"""What a test hub saw, and the assertion helpers both test hubs share.

:class:`~hubbub.testing.memory.InMemoryHub` and
:class:`~hubbub.testing.live.LiveHub` record the same things in the same
place, on the publish and consume paths of the real
:class:`~hubbub.producers.Publisher` and :class:`~hubbub.consumers.Worker`:

- the events their publisher sent: each hub is a :class:`~hubbub.Hub` on a
  :class:`RecordingTransport`, whose publisher transports note every message
  the broker confirmed (``publish``, ``publish_many``, ``apublish`` alike);
- every handler attempt and its outcome: the worker's :class:`Watch`.

Not a middleware (:mod:`hubbub.middleware`): a publish hook runs before
the broker's confirm (an event the broker refused would be recorded), and
a consume hook sees an exception, not the retry decision; the transport
sees what the broker confirmed, the observer the outcome.

They read dead-lettered and unrouted events back from their queues, so a
test reads alike whichever hub it runs on.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from hubbub import envelope
from hubbub.admin import records as admin_records
from hubbub.admin.filters import EVERYTHING, Selection, select
from hubbub.admin.records import FailedEvent
from hubbub.callables import is_async
from hubbub.codecs import Codecs
from hubbub.consumers.handling import Handler, Outcome
from hubbub.consumers.observer import Observer
from hubbub.envelope import Event
from hubbub.errors import MalformedMessageError
from hubbub.message import Message
from hubbub.topology import patterns
from hubbub.topology.model import Topology
from hubbub.topology.plan import Plan
from hubbub.transport.base import (
    ConsumerTransport,
    Pending,
    PublisherTransport,
    Transport,
)

#: Topic of the sentinels :meth:`LiveHub.run_until_idle` sends (never reaches a handler).
SENTINEL = "hubbub.testing.sentinel"

Action = Literal["ack", "retry", "dead-letter", "release"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a subscriber's handler on one event."""

    subscriber: str
    #: The event as the handler got it (None: the message was malformed).
    event: Event | None
    #: ``ack`` (the handler returned), ``retry`` or ``dead-letter``.
    outcome: Action
    #: The exception's type name when the handler raised.
    error: str = ""
    #: Seconds until the retry (for ``retry``).
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event in a subscriber's dead-letter queue, with its failure record."""

    subscriber: str
    event: Event
    #: The record as ``hubbub dlq show`` reads it (reason, exception, attempts,
    #: first and last failure, the history of earlier replays...).
    failure: FailedEvent
    #: hubbub's failure headers, unprefixed: ``reason``, ``exception``, ``message``,
    #: ``traceback``, ``subscriber``, ``queue``, ``exchange``, ``routing-key``, ``host``...
    record: Mapping[str, Any]
    #: Every header of the dead-lettered message.
    headers: Mapping[str, Any]

    @property
    def reason(self) -> str:
        return self.failure.reason

    @property
    def exception(self) -> str | None:
        return self.failure.exception

    @property
    def attempts(self) -> int:
        """Attempts made before it was dead-lettered."""
        return self.failure.attempts


def replay_selection(ids: Iterable[str] | None) -> Selection | None:
    """The dead letters a replay of ``ids`` picks (None: none at all; no ids: every one)."""
    if ids is None:
        return EVERYTHING
    wanted = list(ids)
    return select(ids=wanted) if wanted else None


def decode(routing_key: str, message: Message, codecs: Codecs | None = None) -> Event:
    """The event a message carries; a malformed one as an event whose data is the raw body."""
    try:
        return envelope.decode(routing_key, message, codecs=codecs)
    except MalformedMessageError:
        return Event(
            topic=envelope.topic_of(routing_key, message.headers),
            data=message.body,
            id=message.message_id or "",
            headers=dict(message.headers or {}),
        )


def dead_letter(
    subscriber: str, routing_key: str, message: Message, codecs: Codecs | None = None
) -> DeadLetter:
    headers = {k: _text(v) for k, v in (message.headers or {}).items()}
    record = {
        k.removeprefix(envelope.FAILURE_PREFIX): v
        for k, v in headers.items()
        if k.startswith(envelope.FAILURE_PREFIX)
    }
    failed = admin_records.parse(routing_key, message, subscriber=subscriber)
    return DeadLetter(subscriber, decode(routing_key, message, codecs), failed, record, headers)


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class Recorder:
    """Thread-safe log of published events and handler attempts (the live hub's
    consumer records from its handler threads)."""

    def __init__(self, codecs: Codecs | None = None) -> None:
        #: The hub's codecs: what the events it notes are decoded with.
        self.codecs = codecs
        self._lock = threading.Lock()
        self._published: list[Event] = []
        self._attempts: list[Attempt] = []
        # The event each handler run was given, by (subscriber, id, attempt):
        # the outcome may be reported on another thread (a copy's confirm).
        self._running: dict[tuple[str, str, int], Event] = {}

    def sent(self, routing_key: str, message: Message) -> None:
        """Note a message the hub's publisher sent (an event, delayed or not; not a sentinel)."""
        event = decode(routing_key, message, self.codecs)
        if event.topic == SENTINEL:
            return
        with self._lock:
            self._published.append(event)

    def spy(self, subscriber: str, handler: Handler) -> Handler:
        """``handler``, noting which event each of its runs was given."""

        def noted(event: Event) -> None:
            with self._lock:
                self._running[(subscriber, event.id, event.attempt)] = event

        if is_async(handler):

            @functools.wraps(handler)
            async def aspied(event: Event) -> Any:
                noted(event)
                return await handler(event)

            return aspied

        @functools.wraps(handler)
        def spied(event: Event) -> Any:
            noted(event)
            return handler(event)

        return spied

    def finished(self, subscriber: str, outcome: Outcome) -> None:
        """Note the outcome of an attempt (any thread)."""
        with self._lock:  # no entry: the handler never ran (a malformed message)
            event = self._running.pop((subscriber, outcome.event_id, outcome.attempt), None)
        attempt = Attempt(subscriber, event, outcome.action, outcome.error, outcome.delay)
        with self._lock:
            self._attempts.append(attempt)

    def published(self, topic: str | None = None) -> list[Event]:
        with self._lock:
            events = list(self._published)
        if topic is None:
            return events
        return [e for e in events if any(patterns.matches(topic, t) for t in e.topics)]

    def attempts(self, subscriber: str | None = None) -> list[Attempt]:
        with self._lock:
            attempts = list(self._attempts)
        return [a for a in attempts if subscriber is None or a.subscriber == subscriber]


class Watch(Observer):
    """A test hub's worker observer: records attempts, counts deliveries (thread-safe).

    Counts deliveries started and in flight, and the live hub's sentinels
    (whose attempts are not recorded: no handler sees them).
    """

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._lock = threading.Lock()
        self._started = 0
        self._in_flight = 0
        self._sentinels = 0

    def started(self, subscriber: str) -> None:
        with self._lock:
            self._started += 1
            self._in_flight += 1

    def finished(self, subscriber: str, outcome: Outcome, seconds: float) -> None:
        if outcome.topic == SENTINEL:
            with self._lock:
                self._sentinels += 1
        else:
            self._recorder.finished(subscriber, outcome)

    def settled(self, subscriber: str) -> None:
        with self._lock:
            self._in_flight -= 1

    def started_count(self) -> int:
        with self._lock:
            return self._started

    def in_flight(self) -> int:
        """Deliveries started and not settled yet."""
        with self._lock:
            return self._in_flight

    def quiet(self, sentinels: int) -> bool:
        """True once ``sentinels`` more came out (since the last call that said True)
        and nothing is in flight."""
        with self._lock:
            if self._sentinels >= sentinels and self._in_flight == 0:
                self._sentinels -= sentinels
                return True
            return False


class RecordingTransport:
    """``transport``, with every message its publishers get confirmed noted in ``recorder``.

    A :class:`~hubbub.transport.base.Transport` like the one it wraps (the
    test hubs are hubs on one); its consumers are the wrapped transport's.
    :meth:`unrecorded` gives the wrapped one, for what is not an event of
    the app (the worker's retry and dead-letter copies, the live hub's sentinels).
    """

    def __init__(self, transport: Transport, recorder: Recorder) -> None:
        self.unrecorded = transport
        self.in_memory = transport.in_memory
        self._recorder = recorder

    def publisher(self, *, name: str) -> PublisherTransport:
        return _RecordingPublisher(self.unrecorded.publisher(name=name), self._recorder)

    def consumer(self, *, name: str) -> ConsumerTransport:
        return self.unrecorded.consumer(name=name)

    def apply(self, topology: Topology) -> Plan | None:
        return self.unrecorded.apply(topology)

    def plan(self, topology: Topology) -> Plan:
        return self.unrecorded.plan(topology)

    def time(self) -> float:
        return self.unrecorded.time()


class _RecordingPublisher:
    """A publisher transport that notes each message once the broker confirmed it."""

    def __init__(self, transport: PublisherTransport, recorder: Recorder) -> None:
        self._transport = transport
        self._recorder = recorder

    def send_many(self, pending: Sequence[Pending]) -> None:
        self._transport.send_many([self._noting(p) for p in pending if p.claim()])

    def _noting(self, pending: Pending) -> Pending:
        """A stand-in for ``pending`` whose confirm is noted, then settles ``pending``."""
        confirmed: Future[None] = Future()

        def settle(done: Future[None]) -> None:
            error = done.exception()
            if error is None:
                self._recorder.sent(pending.outbound.routing_key, pending.outbound.message)
            pending.settle(error)

        confirmed.add_done_callback(settle)
        return Pending(pending.outbound, confirmed)

    def connect(self) -> None:
        self._transport.connect()

    @property
    def live(self) -> bool:
        return self._transport.live

    @property
    def blocked(self) -> str | None:
        return self._transport.blocked

    def close(self, timeout: float = 10.0) -> None:
        self._transport.close(timeout)


class Assertions:
    """The assertion helpers of a test hub; it provides ``topology``, ``_recorder`` and
    ``_messages(queue)`` (what a queue holds, oldest first, left in place)."""

    _recorder: Recorder

    @property
    def topology(self) -> Topology:
        raise NotImplementedError

    def _messages(self, queue: str) -> list[tuple[str, Message]]:
        raise NotImplementedError

    def published(self, topic: str | None = None) -> list[Event]:
        """Events published through this hub, oldest first; ``topic`` may be a pattern
        (an event of several topics is there when any of them matches)."""
        return self._recorder.published(topic)

    def attempts(self, subscriber: str | None = None) -> list[Attempt]:
        """Every handler run (retries included), in the order they ended."""
        return self._recorder.attempts(subscriber)

    def handled(self, subscriber: str | None = None) -> list[Event]:
        """Events a subscriber's handler handled successfully (returned), in order."""
        return [
            a.event for a in self.attempts(subscriber) if a.outcome == "ack" and a.event is not None
        ]

    def dead_lettered(self, subscriber: str | None = None) -> list[DeadLetter]:
        """What the dead-letter queues hold now (all subscribers', or one's), oldest first."""
        names = self.topology.names
        subs = [subscriber] if subscriber else [s.name for s in self.topology.subscribers]
        return [
            dead_letter(sub, key, message, self._recorder.codecs)
            for sub in subs
            for key, message in self._messages(names.dead_letter_queue(sub))
        ]

    def unrouted(self) -> list[Event]:
        """Events no subscriber matched, parked in ``<hub>.unrouted``, oldest first."""
        return [
            decode(key, message, self._recorder.codecs)
            for key, message in self._messages(self.topology.names.unrouted)
        ]
