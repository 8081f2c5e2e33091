"""An event as the AMQP message that carries it: an :class:`~hubbub.message.Outbound`.

Every publisher (hubbub's own :class:`~hubbub.producers.Publisher`, the
kombu one, and any other) builds its messages here, so the envelope, the
hub's names and the delay ladder's routing keys have one definition and
publishers cannot drift apart. Pure apart from reading the clock (timestamp,
due time) and :data:`hubbub.envelope.current_event` (the causing event).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypedDict

from hubbub import envelope, wire
from hubbub.codecs import Codec, Codecs, encode
from hubbub.errors import ConfigurationError, PublishError
from hubbub.message import Outbound, new_outbound
from hubbub.middleware import publishing
from hubbub.topology import delay, patterns
from hubbub.topology.durations import parse_duration
from hubbub.topology.names import HubNames

#: The longest AMQP short string (message_id), in bytes.
_SHORT = wire.MAX_SHORT_BYTES

#: An event's topic, or its topics: ``"user.signed_up"`` or ``["user.signed_up",
#: "marketing.lead"]`` (the first is its topic; each subscriber whose patterns
#: match any of them gets one copy).
Topics = str | Sequence[str]
#: Most topics one event may carry. Its headers (``CC`` and ``hubbub-topics``,
#: each topic up to 255 bytes, a delayed one's ``CC`` keys ~60 bytes longer)
#: must fit in one AMQP frame (128 KiB by default): past it the broker closes
#: the connection (FRAME_ERROR). 100 leaves room for the event's own headers.
MAX_TOPICS = 100


def split_topics(topic: Topics) -> tuple[str, tuple[str, ...]]:
    """``(first, others)`` of ``topic``; raises ConfigurationError for no topic or not strings.

    Repeated topics count once. The first is the routing key; the others
    travel in the message's ``CC`` header.
    """
    if type(topic) is str:
        return topic, ()
    if isinstance(topic, str | bytes) or not isinstance(topic, Sequence):
        raise ConfigurationError(
            f"a topic is a string or a list of strings, not {type(topic).__name__} ({topic!r})"
        )
    if not topic:
        raise ConfigurationError("give at least one topic (an empty list was given)")
    for item in topic:
        if type(item) is not str:
            raise ConfigurationError(
                f"a topic is a string, not {type(item).__name__} ({item!r}) in {list(topic)!r}"
            )
    first, *others = dict.fromkeys(topic)
    if len(others) >= MAX_TOPICS:
        raise ConfigurationError(
            f"an event has at most {MAX_TOPICS} topics, this one {len(others) + 1}: "
            "publish several events, or tag the event in its data"
        )
    return first, tuple(others)


def first_topic(topic: Topics) -> str:
    """The topic a codec is chosen by and the routing key says: the first."""
    return topic if type(topic) is str else split_topics(topic)[0]


class PublishOptions(TypedDict, total=False):
    """The keyword arguments of every publish, written once.

    ``hub.publish(topic, data, **options)``, ``apublish``, ``Publisher``'s,
    ``KombuPublisher``'s and ``hubbub.publish`` all take these:

    - ``headers``: the event's own headers (names not starting ``hubbub-``);
    - ``message_id``: the id consumers deduplicate by (default: a new UUID);
    - ``delay``: hold the event this long (seconds, a timedelta, or ``"90s"``,
      ``"2h"``), in the broker's delay ladder;
    - ``deliver_at``: or until then (timezone-aware); not with ``delay``.
    """

    headers: Mapping[str, Any] | None
    message_id: str | None
    delay: float | timedelta | str | None
    deliver_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event to publish with ``publish_many``: a topic, its data and :class:`PublishOptions`."""

    topic: Topics
    data: Any
    headers: Mapping[str, Any] | None = None
    message_id: str | None = None
    delay: float | timedelta | str | None = None
    deliver_at: datetime | None = None


class EventMessages:
    """How one publisher turns events into messages: its hub, codecs and publish middlewares.

    Built once per publisher, so the middleware chain is compiled once and
    a topic's codec looked up once. Without middlewares and codecs an event
    costs what :func:`event_message` costs, nothing more. ``deliver_at`` counts
    from ``clock`` (see :func:`delay_seconds`).
    """

    def __init__(
        self,
        names: HubNames,
        *,
        codecs: Codecs | None = None,
        middleware: Sequence[Any] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.names = names
        self.codecs = codecs
        self.clock = clock
        self._chain = publishing(middleware)

    def one(self, topic: Topics, data: Any, options: PublishOptions) -> tuple[str, Outbound]:
        """The id and message of one event; a PublishError's ``failed`` holds the id."""
        if options:
            message_id = options.get("message_id") or envelope.new_id()
            headers = options.get("headers")
            seconds = delay_seconds(options.get("delay"), options.get("deliver_at"), self.clock)
        else:  # publish(topic, data): the common call, nothing to look up
            message_id, headers, seconds = envelope.new_id(), None, None
        try:
            outbound = event_message(
                self.names,
                topic,
                data,
                message_id=message_id,
                headers=headers,
                seconds=seconds,
                codec=self.codecs.encoder(first_topic(topic)) if self.codecs else None,
            )
        except PublishError as exc:
            exc.failed = [message_id]
            raise
        chain = self._chain
        return message_id, outbound if chain is None else chain(outbound)

    def many(self, events: Iterable[OutgoingEvent]) -> list[tuple[str, Outbound]]:
        """Each event's id and message, of events :meth:`check` passed."""
        chain, codecs, prepared = self._chain, self.codecs, []
        for event in events:
            message_id = event.message_id or envelope.new_id()
            outbound = event_message(
                self.names,
                event.topic,
                event.data,
                message_id=message_id,
                headers=event.headers,
                seconds=delay_seconds(event.delay, event.deliver_at, self.clock),
                checked=True,
                codec=codecs.encoder(first_topic(event.topic)) if codecs else None,
            )
            prepared.append((message_id, outbound if chain is None else chain(outbound)))
        return prepared

    def check(self, batch: Sequence[OutgoingEvent]) -> None:
        """Raise, naming the first bad event, unless every event of ``batch`` can be sent.

        A PublishError lists an id for every event (nothing was sent: the ones
        not given a ``message_id`` get a new one); a ConfigurationError (topic,
        delay) says which event of the batch it is about.
        """
        codecs = self.codecs
        for index, event in enumerate(batch):
            try:
                check_event(
                    event.topic,
                    event.data,
                    event.delay,
                    event.deliver_at,
                    message_id=event.message_id or "",
                    headers=event.headers,
                    codec=codecs.encoder(first_topic(event.topic)) if codecs else None,
                )
            except PublishError as exc:
                text = f"event {index} of the batch: {exc}; nothing of the batch was sent"
                ids = [e.message_id or envelope.new_id() for e in batch]
                raise type(exc)(text, failed=ids) from exc  # DelayTooLongError stays one
            except ConfigurationError as exc:
                raise ConfigurationError(f"event {index} of the batch: {exc}") from exc


def event_message(
    names: HubNames,
    topic: Topics,
    data: Any,
    *,
    message_id: str,
    headers: Mapping[str, Any] | None = None,
    seconds: int | None = None,
    checked: bool = False,
    codec: Codec | None = None,
) -> Outbound:
    """The message that publishes ``topic`` to ``names``' hub, now or after ``seconds``.

    Persistent and not mandatory: the hub's alternate exchange parks what no
    subscriber matches. Several topics: one message, routed under the first
    and, through ``CC``, the others (:func:`split_topics`).

    Raises ConfigurationError for a topic that is not a valid routing key,
    and PublishError for data, headers or an id the wire cannot carry
    (:mod:`hubbub.wire`: the one line names the field or header).
    ``checked``: :func:`check_event` already passed the data (a batch), so
    it is serialized without looking for NaN again. ``codec``: encode the
    data with it instead of JSON (:mod:`hubbub.codecs`).
    An event published while a handler runs carries that event's
    correlation id, and its id as causation id.
    """
    if type(topic) is str:
        also: tuple[str, ...] = ()
        also_keys: tuple[str, ...] = ()
    else:
        topic, also = split_topics(topic)
        also_keys = tuple(_route(names, t, seconds)[1] for t in also)
    exchange, key = _route(names, topic, seconds)
    plain_id = type(message_id) is str and len(message_id) <= _SHORT and message_id.isascii()
    if headers or not plain_id:  # a generated id and no headers: the hot path, nothing to check
        _check_envelope(message_id, headers)
    cause = envelope.current_event.get()
    if codec is None:
        body, content_type = envelope.dumps(data) if checked else wire.body(data), envelope.JSON
    else:
        body, content_type = encode(codec, data), codec.content_type
    message = envelope.message(
        topic,
        body,
        message_id=message_id,
        headers=headers,
        correlation_id=cause.correlation_id if cause else None,
        causation_id=cause.id if cause else None,
        delay_seconds=seconds,
        content_type=content_type,
        also=also,
        also_keys=also_keys,
    )
    return new_outbound(exchange, key, message, False)


def check_event(
    topic: Topics,
    data: Any,
    delay_: float | timedelta | str | None,
    deliver_at: datetime | None,
    *,
    message_id: str = "",
    headers: Mapping[str, Any] | None = None,
    codec: Codec | None = None,
) -> None:
    """Raise what preparing this event would raise, building nothing.

    :meth:`Publisher.publish_many` checks a whole batch this way before it
    sends any of it, then prepares and sends it in chunks.
    """
    seconds = delay_seconds(delay_, deliver_at)
    first, others = split_topics(topic)
    for each in (first, *others):
        _route(HubNames("check"), each, seconds)
    if message_id or headers:  # none: a generated id, nothing to check
        _check_envelope(message_id, headers)
    if codec is None:
        wire.body(data)
    else:
        encode(codec, data)


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
    delay_: float | timedelta | str | None,
    deliver_at: datetime | None,
    clock: Callable[[], float] = time.time,
) -> int | None:
    """Whole seconds to hold an event (None: deliver now), from ``delay=`` or ``deliver_at=``.

    ``deliver_at`` counts from ``clock()`` (epoch seconds; a test's fake clock
    under the in-memory hub).
    """
    if delay_ is not None and deliver_at is not None:
        raise ConfigurationError("give either delay= or deliver_at=, not both")
    if deliver_at is not None:
        if deliver_at.tzinfo is None:
            raise ConfigurationError("deliver_at must be timezone-aware (e.g. tzinfo=timezone.utc)")
        return delay.whole_seconds(deliver_at.timestamp() - clock())
    if delay_ is None:
        return None
    try:
        return delay.whole_seconds(parse_duration(delay_))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
