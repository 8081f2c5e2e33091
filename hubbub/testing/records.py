"""What a test hub saw, and the assertion helpers both test hubs share.

:class:`~hubbub.testing.memory.InMemoryHub` and
:class:`~hubbub.testing.live.LiveHub` record the same things the same way
(the events their publisher sent, every handler attempt and its outcome)
and read dead-lettered and unrouted events back from their queues, so a
test reads alike whichever hub it runs on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hubbub import envelope
from hubbub.admin import records as admin_records
from hubbub.admin.filters import EVERYTHING, Selection, select
from hubbub.admin.records import FailedEvent
from hubbub.codecs import Codecs
from hubbub.consumers.handling import Handler, Outcome
from hubbub.envelope import Event
from hubbub.errors import MalformedMessageError
from hubbub.message import Message
from hubbub.topology import patterns
from hubbub.topology.model import Topology

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
        """Note a message the hub's publisher sent (an event, delayed or not)."""
        event = decode(routing_key, message, self.codecs)
        with self._lock:
            self._published.append(event)

    def spy(self, subscriber: str, handler: Handler) -> Handler:
        """``handler``, noting which event each of its runs was given."""

        def spied(event: Event) -> Any:
            with self._lock:
                self._running[(subscriber, event.id, event.attempt)] = event
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
        return [e for e in events if topic is None or patterns.matches(topic, e.topic)]

    def attempts(self, subscriber: str | None = None) -> list[Attempt]:
        with self._lock:
            attempts = list(self._attempts)
        return [a for a in attempts if subscriber is None or a.subscriber == subscriber]


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
        """Events published through this hub, oldest first; ``topic`` may be a pattern."""
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
