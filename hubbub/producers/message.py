"""An event as the AMQP message that carries it: an :class:`~hubbub.message.Outbound`.

Every publisher (hubbub's own :class:`~hubbub.producers.Publisher`, the
kombu one, and any other) builds its messages here, so the envelope, the
hub's names and the delay ladder's routing keys have one definition and
publishers cannot drift apart. Pure apart from reading the clock (timestamp,
due time) and :data:`hubbub.envelope.current_event` (the causing event).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from hubbub import envelope
from hubbub.errors import ConfigurationError
from hubbub.message import Outbound, new_outbound
from hubbub.producers import wire
from hubbub.topology import delay, patterns
from hubbub.topology.durations import parse_duration
from hubbub.topology.names import HubNames

#: The longest AMQP short string (message_id), in bytes.
_SHORT = wire.MAX_SHORT_BYTES


def event_message(
    names: HubNames,
    topic: str,
    data: Any,
    *,
    message_id: str,
    headers: Mapping[str, Any] | None = None,
    seconds: int | None = None,
    checked: bool = False,
) -> Outbound:
    """The message that publishes ``topic`` to ``names``' hub, now or after ``seconds``.

    Persistent and not mandatory: the hub's alternate exchange parks what no
    subscriber matches.

    Raises ConfigurationError for a topic that is not a valid routing key,
    and PublishError for data, headers or an id the wire cannot carry
    (:mod:`hubbub.producers.wire`: the one line names the field or header).
    ``checked``: :func:`check_event` already passed the data (a batch), so
    it is serialized without looking for NaN again.
    An event published while a handler runs carries that event's
    correlation id, and its id as causation id.
    """
    exchange, key = _route(names, topic, seconds)
    plain_id = type(message_id) is str and len(message_id) <= _SHORT and message_id.isascii()
    if headers or not plain_id:  # a generated id and no headers: the hot path, nothing to check
        _check_envelope(message_id, headers)
    cause = envelope.current_event.get()
    message = envelope.message(
        topic,
        envelope.dumps(data) if checked else wire.body(data),
        message_id=message_id,
        headers=headers,
        correlation_id=cause.correlation_id if cause else None,
        causation_id=cause.id if cause else None,
        delay_seconds=seconds,
    )
    return new_outbound(exchange, key, message, False)


def check_event(
    topic: str,
    data: Any,
    delay_: float | timedelta | str | None,
    deliver_at: datetime | None,
    *,
    message_id: str = "",
    headers: Mapping[str, Any] | None = None,
) -> None:
    """Raise what preparing this event would raise, building nothing.

    :meth:`Publisher.publish_many` checks a whole batch this way before it
    sends any of it, then prepares and sends it in chunks.
    """
    seconds = delay_seconds(delay_, deliver_at)
    _route(HubNames("check"), topic, seconds)
    if message_id or headers:  # none: a generated id, nothing to check
        _check_envelope(message_id, headers)
    wire.body(data)


def _check_envelope(message_id: str, headers: Mapping[str, Any] | None) -> None:
    """Raise PublishError for an id or headers AMQP cannot carry (cheap for a generated id)."""
    if not (
        type(message_id) is str and len(message_id) <= wire.MAX_SHORT_BYTES and message_id.isascii()
    ):
        wire.check_short(message_id, "message_id")
    if headers:
        wire.check_headers(headers)


def _route(names: HubNames, topic: str, seconds: int | None) -> tuple[str, str]:
    """Exchange and routing key of ``topic``, now or after ``seconds``; raises when invalid."""
    if type(topic) is not str:
        raise ConfigurationError(f"a topic is a string, not {type(topic).__name__} ({topic!r})")
    problems = _topic_problems(topic)
    if problems:
        raise ConfigurationError(problems)
    if seconds is None:
        return names.exchange, topic
    return delay.entry_exchange(names, seconds), delay.event_key(seconds, topic)


@lru_cache(maxsize=4096)
def _topic_problems(topic: str) -> str:
    """Why ``topic`` cannot be published ("": it can), remembered: an
    application publishes a few topics many times (bench/README.md)."""
    try:
        topic.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate: undecodable bytes, e.g. from argv
        return (
            f"topic {topic!r} is not valid UTF-8 text ({exc.reason} at index {exc.start}); "
            "a topic is UTF-8 words separated by dots"
        )
    return "; ".join(patterns.topic_problems(topic))


def delay_seconds(
    delay_: float | timedelta | str | None, deliver_at: datetime | None
) -> int | None:
    """Whole seconds to hold an event (None: deliver now), from ``delay=`` or ``deliver_at=``."""
    if delay_ is not None and deliver_at is not None:
        raise ConfigurationError("give either delay= or deliver_at=, not both")
    if deliver_at is not None:
        if deliver_at.tzinfo is None:
            raise ConfigurationError("deliver_at must be timezone-aware (e.g. tzinfo=timezone.utc)")
        return delay.whole_seconds((deliver_at - datetime.now(timezone.utc)).total_seconds())
    if delay_ is None:
        return None
    try:
        return delay.whole_seconds(parse_duration(delay_))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
