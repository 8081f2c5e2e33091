"""What a message parked in a dead-letter or unrouted queue says about its failure (pure).

A message reaches a subscriber's dead-letter queue in one of two ways, and
the record says which (``dead_lettered_by``):

- ``hubbub``: the consumer published a copy carrying hubbub's failure record
  (``hubbub-failure-*`` headers, see :mod:`hubbub.consumers.failure`) after
  the last attempt or a non-retryable error;
- ``broker``: the broker dead-lettered the message itself, e.g. a poison
  event that killed its consumer more often than the queue's delivery limit
  allows. It then carries ``x-death`` (newest entry first) and
  ``x-first-death-reason``; any ``hubbub-failure-*`` headers it also carries
  describe an *earlier* attempt, not this death.

An event parked in the hub's unrouted queue was never handled: its record
has ``dead_lettered_by == "none"`` and reason ``unrouted``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

import orjson

from hubbub import envelope
from hubbub.admin import history
from hubbub.consumers import failure
from hubbub.message import Message
from hubbub.topology import delay

#: Reason of an event parked because no subscriber matched its topic.
UNROUTED = "unrouted"

Origin = Literal["hubbub", "broker", "none"]


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """One parked event as an operator sees it (``dlq show``)."""

    #: The event id (``message_id``); a stable digest of the message when it has none.
    id: str
    topic: str
    #: The subscriber that failed it (None for unrouted events).
    subscriber: str | None
    #: hubbub's attempt count (1: the first). A poison event dead-lettered by the
    #: broker shows the attempt it died in; how often it was redelivered is not
    #: kept (``x-delivery-count`` restarts in the dead-letter queue).
    attempts: int
    #: Why it is parked: e.g. ``attempts exhausted``, ``not retryable``, ``delivery_limit``.
    reason: str
    dead_lettered_by: Origin
    exception: str | None = None
    message: str = ""
    traceback: str = ""
    first_failed: datetime | None = None
    last_failed: datetime | None = None
    published: datetime | None = None
    #: Failures recorded before earlier replays (oldest first).
    history: tuple[Mapping[str, Any], ...] = ()
    #: Position in the queue when it was read (0 = head).
    position: int = 0
    routing_key: str = ""
    headers: Mapping[str, Any] = field(default_factory=dict)
    #: The message body as parked: the event's data as JSON (see :attr:`data`).
    body: bytes = b""
    content_type: str | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic of the event, ``topic`` first (several: it was published under several)."""
        return envelope.topics_of(self.topic, self.headers)

    @property
    def when(self) -> datetime | None:
        """The moment that dates this record: its last failure, else its publication."""
        return self.last_failed or self.published

    @property
    def data(self) -> Any:
        """The event's data, decoded from the body (None when it is not JSON: see
        :attr:`data_problem`). Decoded on each access: listing never pays for it."""
        return decode_data(self.body, self.content_type)[0]

    @property
    def data_problem(self) -> str | None:
        """Why the body is not the event's JSON data (a malformed event), or None."""
        return decode_data(self.body, self.content_type)[1]

    def body_text(self) -> str:
        """The body as text (undecodable bytes replaced), for showing a malformed event."""
        return self.body.decode("utf-8", "replace")

    def to_json(self, *, with_traceback: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings) for ``--json`` and web pages."""
        data: dict[str, Any] = {
            "id": self.id,
            "topic": self.topic,
            "topics": list(self.topics),
            "subscriber": self.subscriber,
            "attempts": self.attempts,
            "reason": self.reason,
            "dead_lettered_by": self.dead_lettered_by,
            "exception": self.exception,
            "message": self.message,
            "first_failed": _iso(self.first_failed),
            "last_failed": _iso(self.last_failed),
            "published": _iso(self.published),
            "history": [dict(h) for h in self.history],
            "position": self.position,
        }
        if with_traceback:
            data["traceback"] = self.traceback
        value, problem = decode_data(self.body, self.content_type)
        data["data"] = value
        if problem is not None:
            data["data_problem"] = problem
            data["body"] = self.body_text()
        return data


def parse(
    routing_key: str,
    message: Message,
    *,
    subscriber: str | None,
    position: int = 0,
) -> FailedEvent:
    """The record of ``message``, read from ``subscriber``'s DLQ (None: the unrouted queue)."""
    headers: Mapping[str, Any] = message.headers or {}
    base = FailedEvent(
        id=event_id(message),
        topic=topic_of(routing_key, message, headers),
        subscriber=None,
        attempts=0,
        reason=UNROUTED,
        dead_lettered_by="none",
        published=_from_seconds(message.timestamp),
        history=history.decode(headers.get(history.HISTORY)),
        position=position,
        routing_key=routing_key,
        headers=headers,
        body=message.body,
        content_type=message.content_type,
    )
    if subscriber is None:
        return base
    death = broker_death(headers)
    if death is not None:
        return _broker_record(base, headers, death, subscriber)
    return replace(
        base,
        subscriber=_text(headers.get(failure.SUBSCRIBER)) or subscriber,
        attempts=_positive(headers.get(envelope.ATTEMPT), 1),
        reason=_text(headers.get(failure.REASON)) or "unknown",
        dead_lettered_by="hubbub",
        exception=_text(headers.get(failure.EXCEPTION)),
        message=_text(headers.get(failure.MESSAGE)) or "",
        traceback=_text(headers.get(failure.TRACEBACK)) or "",
        first_failed=_from_ms(headers.get(failure.FIRST_TIME)),
        last_failed=_from_ms(headers.get(failure.LAST_TIME)),
    )


def _broker_record(
    base: FailedEvent, headers: Mapping[str, Any], death: Mapping[str, Any], subscriber: str
) -> FailedEvent:
    reason = _text(death.get("reason")) or "unknown"
    died = death.get("time") if isinstance(death.get("time"), datetime) else None
    earlier = _text(headers.get(failure.EXCEPTION))
    message = f"dead-lettered by the broker ({reason}) from queue {_text(death.get('queue'))}"
    if reason == "delivery_limit":
        message = (
            "the broker dead-lettered it after its delivery limit: it was delivered "
            "again and again without being acked (did its handler kill the consumer?)"
        )
    if earlier:
        message += f"; an earlier attempt raised {earlier}"
    return replace(
        base,
        subscriber=subscriber,
        attempts=_positive(headers.get(envelope.ATTEMPT), 1),
        reason=reason,
        dead_lettered_by="broker",
        message=message,
        first_failed=_from_ms(headers.get(failure.FIRST_TIME)) or died,
        last_failed=died,
    )


def decode_data(body: bytes, content_type: str | None) -> tuple[Any, str | None]:
    """``(data, None)`` for a JSON body, ``(None, why not)`` for anything else."""
    ctype = (content_type or envelope.JSON).split(";")[0].strip().lower()
    if ctype not in (envelope.JSON, "text/json") and not ctype.endswith("+json"):
        return None, f"content type {content_type!r} is not JSON"
    try:
        return orjson.loads(body), None
    except orjson.JSONDecodeError as exc:
        return None, f"body is not valid JSON: {exc}"


def broker_death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The newest ``x-death`` entry, when the broker dead-lettered this message."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    if headers.get("x-first-death-reason") is not None:
        return {
            "reason": headers.get("x-first-death-reason"),
            "queue": headers.get("x-first-death-queue"),
        }
    return None


def event_id(message: Message) -> str:
    """``message_id``, or a digest of what never changes in the message (for ``--id``)."""
    if message.message_id:
        return str(message.message_id)
    digest = hashlib.sha256(message.body)
    digest.update(f"|{message.timestamp}|{message.type}|{message.correlation_id}".encode())
    return "sha-" + digest.hexdigest()[:16]


def topic_of(routing_key: str, message: Message, headers: Mapping[str, Any]) -> str:
    """The event's topic: hubbub's header, the key the broker saw first, ``type``, the key."""
    topic = _text(headers.get(envelope.TOPIC))
    if topic:
        return topic
    death = broker_death(headers)
    keys = death.get("routing-keys") if death is not None else None
    if isinstance(keys, list) and keys:
        routing_key = _text(keys[0]) or routing_key
    stripped = delay.strip(routing_key)
    if stripped is not None and stripped[0] == delay.EVENT_MARK:
        return stripped[1]
    if message.type:
        return str(message.type)
    return routing_key


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _positive(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def _from_ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value / 1000, timezone.utc)


def _from_seconds(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return datetime.fromtimestamp(value, timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value else None
