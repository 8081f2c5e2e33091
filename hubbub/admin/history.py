"""The headers of a replayed copy: attempt counter reset, failure history kept (pure).

A replayed event starts over: its attempt counter and current failure
record are removed, so the subscriber gives it its full retry policy again.
What it went through is not lost: each replay appends the failure it is
replayed from to ``hubbub-failure-history``, a JSON list (oldest first) kept
as a string so any AMQP client can read it. The list is capped (newest
entries, shortened tracebacks) because headers cannot span frames.

The broker's own death headers are stripped too: NOTES.md, a republished
message carrying old ``x-death`` entries can be dropped as a dead-letter
cycle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hubbub import envelope
from hubbub.consumers import failure
from hubbub.message import Message

if TYPE_CHECKING:
    from hubbub.admin.records import FailedEvent

#: Header holding the failures of earlier rounds (a JSON list, oldest first).
HISTORY = envelope.FAILURE_PREFIX + "history"
#: Entries kept in the history (the newest).
MAX_ENTRIES = 10
#: Characters of each entry's traceback kept (its end: where it was raised).
MAX_TRACEBACK = 800
#: The encoded history never exceeds this many bytes (frame_max is 128 KiB).
MAX_BYTES = 24_000
#: Failure headers a replayed copy keeps: where the event first came from.
KEPT = frozenset({failure.EXCHANGE, failure.ROUTING_KEY, HISTORY})


def decode(value: Any) -> tuple[Mapping[str, Any], ...]:
    """The history in a header value; a missing or damaged one reads as empty."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ()
    try:
        entries = json.loads(value)
    except ValueError:
        return ()
    if not isinstance(entries, list):
        return ()
    return tuple(e for e in entries if isinstance(e, dict))


def entry(event: FailedEvent, *, replayed_ms: int, edited: bool = False) -> dict[str, Any]:
    """What one failure round leaves in the history when its event is replayed.

    ``edited``: the replay carried data an operator changed (the entry says so).
    """
    record: dict[str, Any] = {
        "reason": event.reason,
        "dead_lettered_by": event.dead_lettered_by,
        "exception": event.exception,
        "message": event.message[: failure.MAX_MESSAGE],
        "traceback": event.traceback[-MAX_TRACEBACK:],
        "subscriber": event.subscriber,
        "attempts": event.attempts,
        "first_failed_ms": _ms(event.first_failed),
        "last_failed_ms": _ms(event.last_failed),
        "replayed_ms": replayed_ms,
    }
    if edited:
        record["edited"] = True
    return record


def encode(entries: list[Mapping[str, Any]]) -> str:
    """``entries`` as the header's JSON, trimmed to the newest that fit the limits."""
    kept = list(entries[-MAX_ENTRIES:])
    while True:
        text = json.dumps(kept, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= MAX_BYTES or len(kept) <= 1:
            return text
        kept = kept[1:]


def replay_headers(event: FailedEvent, *, now_ms: int, edited: bool = False) -> dict[str, Any]:
    """Headers of the copy that replays ``event`` to its subscriber's queue."""
    headers = envelope.aimed_copy_headers(
        event.headers, envelope.topics_of(event.topic, event.headers or {})
    )
    headers = {
        k: v for k, v in headers.items() if not k.startswith(envelope.FAILURE_PREFIX) or k in KEPT
    }
    headers.pop(envelope.ATTEMPT, None)
    headers[envelope.TOPIC] = event.topic
    headers[HISTORY] = encode([*event.history, entry(event, replayed_ms=now_ms, edited=edited)])
    return headers


def replay_message(
    message: Message, event: FailedEvent, *, now_ms: int, edited: bool = False
) -> Message:
    """The replayed copy of ``message``: persistent, with :func:`replay_headers`."""
    return message.republished(replay_headers(event, now_ms=now_ms, edited=edited))


def unrouted_message(message: Message, topics: tuple[str, ...]) -> Message:
    """An unrouted event republished to the hub under its first topic: the broker's
    headers stripped, ``CC`` listing its other ``topics`` as they are now.

    Not as it was parked: a delayed event's ``CC`` held delay-ladder keys, which
    match nothing on the hub, so the subscribers of its other topics would miss it.
    """
    headers = envelope.aimed_copy_headers(message.headers, topics)
    if len(topics) > 1:
        headers[envelope.CC] = list(topics[1:])
    return message.republished(headers)


def _ms(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if value is not None else None
