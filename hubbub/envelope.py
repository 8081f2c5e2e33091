"""The event envelope: how an event travels as an AMQP message (pure).

The body is the event's JSON data alone; its metadata rides in AMQP
properties and headers (as CloudEvents' binary mode does), so a service in
any language can publish to and consume from the hub with a plain AMQP
client, and hubbub accepts plain JSON messages it did not publish itself.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from hubbub.errors import MalformedMessageError
from hubbub.fastinit import builder
from hubbub.message import PERSISTENT as PERSISTENT
from hubbub.message import PROPERTY_NAMES as PROPERTY_NAMES
from hubbub.message import Message, new_message
from hubbub.topology import delay, patterns

if TYPE_CHECKING:
    from hubbub.codecs import Codecs

#: The event's topic when the routing key no longer says it (delays, retries, DLQs).
TOPIC = "hubbub-topic"
#: Every topic of an event published under several, separated by spaces (a topic
#: holds none), the first its topic. A string, not a list: a stream (the archive)
#: drops list-valued headers (RabbitMQ 3.10.8 and 4.0.5). A list from another client
#: is read too.
TOPICS = "hubbub-topics"
#: The AMQP header of a message's extra routing keys (sender-selected distribution):
#: a queue matched by several of its keys still gets one copy. ``BCC`` is the same,
#: removed by the broker before delivery.
CC, BCC = "CC", "BCC"
#: Which attempt this delivery is (1 for the first); hubbub's own count, never x-death.
ATTEMPT = "hubbub-attempt"
#: Id of the event whose handler published this one.
CAUSATION = "hubbub-causation-id"
#: The delay requested at publish time, in milliseconds.
DELAY_MS = "hubbub-delay-ms"
#: When a delayed event was due, epoch milliseconds.
DUE_MS = "hubbub-due-ms"
#: Headers of hubbub's failure record start with this.
FAILURE_PREFIX = "hubbub-failure-"
#: Headers the broker adds while dead-lettering; stripped before republishing
#: (NOTES.md: a republished message carrying them can be dropped as a cycle).
BROKER_DEATH_PREFIXES = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")
#: Headers the broker adds to what it delivers: dead-lettering's, and a stream's offset.
BROKER_HEADERS = (*BROKER_DEATH_PREFIXES, "x-stream-offset")
#: Headers an Event hides: hubbub's own and those the broker (or a shovel or
#: federation link) adds. A publisher's own ``x-`` headers (``x-request-id``) stay.
_NOT_THE_PUBLISHERS = (*BROKER_HEADERS, "x-received-from", "x-shovelled", "hubbub-")

JSON = "application/json"
APP_ID = f"hubbub@{socket.gethostname()}"


def dumps(data: Any) -> bytes:
    """Serialize event data (orjson: dataclasses, datetimes and UUIDs included)."""
    return orjson.dumps(data)


@dataclass(frozen=True, slots=True)
class Event:
    """One event as a handler sees it."""

    topic: str
    data: Any
    id: str
    attempt: int = 1
    #: The publisher's own headers (hubbub's and the broker's removed).
    headers: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    causation_id: str | None = None
    timestamp: datetime | None = None
    #: The delay it was published with, in seconds (None: not delayed).
    delay: float | None = None
    #: When a delayed event was due (publish time plus delay; None: not delayed).
    due: datetime | None = None
    #: The subscriber handling it (set by the consumer).
    subscriber: str | None = None
    redelivered: bool = False
    #: Every topic the event was published under, its ``topic`` first.
    topics: tuple[str, ...] = ()
    #: The topics of ``topics`` the subscriber's patterns match (why it got the event).
    matched: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # An Event built by hand (a test's) has its one topic; decode passes both.
        if not self.topics:
            object.__setattr__(self, "topics", (self.topic,))
        if not self.matched:
            object.__setattr__(self, "matched", self.topics)


def new_id() -> str:
    """A random UUID4 as 32 hex digits, as ``uuid.uuid4().hex`` gives.

    Cheaper per event: the random bytes come from one ``os.urandom`` call per
    256 ids (per thread; reset in a forked child so parent and child never
    share them), and the version nibble (4) and RFC 4122 variant bits (10xx)
    are set on the hex string. One system call per id would also hand the
    GIL to the publisher's I/O thread and wait to get it back, every time.
    """
    source = _random
    if source.offset >= len(source.digits):
        source.digits, source.offset = os.urandom(16 * _IDS_PER_DRAW).hex(), 0
    at = source.offset
    source.offset = at + 32
    d = source.digits
    return f"{d[at : at + 12]}4{d[at + 13 : at + 16]}{_VARIANT[d[at + 16]]}{d[at + 17 : at + 32]}"


_IDS_PER_DRAW = 256


class _RandomDigits(threading.local):
    """Hex digits of random bytes drawn ahead, one buffer per thread."""

    def __init__(self) -> None:
        self.digits, self.offset = "", 0


def _after_fork() -> None:
    """A forked child draws random bytes of its own, never its parent's next ones."""
    _random.digits, _random.offset = "", 0


_random = _RandomDigits()
if hasattr(os, "register_at_fork"):  # POSIX; there is no fork elsewhere
    os.register_at_fork(after_in_child=_after_fork)

#: Hex digit -> the same digit with the two high bits set to the RFC 4122 variant (10).
_VARIANT = {f"{n:x}": f"{8 | (n & 3):x}" for n in range(16)}


def message(
    topic: str,
    body: bytes,
    *,
    message_id: str,
    headers: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    delay_seconds: int | None = None,
    content_type: str = JSON,
    also: tuple[str, ...] = (),
    also_keys: tuple[str, ...] = (),
) -> Message:
    """The message of a freshly published event: ``body`` with hubbub's properties.

    A delayed one (``delay_seconds``) carries its topic, delay and due time in
    headers: the ladder's routing key no longer says the topic, and the
    consumer reports how late it came. An event of several topics (``also``:
    the topics after ``topic``) lists its extra routing keys (``also_keys``)
    in ``CC``, so the broker routes one message under all of them, and every
    topic in ``hubbub-topics``, which survives where ``CC`` does not (a retry
    or dead-letter copy is aimed at one queue and must not fan out again).
    """
    all_headers = dict(headers) if headers else {}
    if also:
        all_headers[CC] = list(also_keys)
        all_headers[TOPICS] = " ".join((topic, *also))
    if causation_id:
        all_headers[CAUSATION] = causation_id
    now = time.time()
    if delay_seconds is not None:
        all_headers[TOPIC] = topic
        all_headers[DELAY_MS] = delay_seconds * 1000
        all_headers[DUE_MS] = int(now * 1000) + delay_seconds * 1000
    # Positional, in wire order: the publish path builds one per event.
    return new_message(
        body,
        content_type,
        None,  # content_encoding
        all_headers or None,
        PERSISTENT,  # delivery_mode
        None,  # priority
        correlation_id or message_id,
        None,  # reply_to
        None,  # expiration
        message_id,
        int(now),  # timestamp
        topic,  # type
        None,  # user_id
        APP_ID,
        None,  # cluster_id
    )


def publisher_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The headers its publisher gave an event: hubbub's and the broker's left out."""
    return {k: v for k, v in (headers or {}).items() if not k.startswith(_NOT_THE_PUBLISHERS)}


def without_broker_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """``headers`` minus what the broker adds (when dead-lettering, or reading a stream)."""
    return {k: v for k, v in (headers or {}).items() if not k.startswith(BROKER_HEADERS)}


def aimed_copy_headers(
    headers: Mapping[str, Any] | None, topics: tuple[str, ...]
) -> dict[str, Any]:
    """Headers of a copy aimed at one queue (a retry, a dead-letter, a replay).

    The broker's death headers go (:func:`without_broker_headers`), and so do
    ``CC``/``BCC``: a copy routed with them would reach every subscriber its
    event's other topics match, a second time. The event's topics stay, in
    ``hubbub-topics``, when it has several.
    """
    result = without_broker_headers(headers)
    result.pop(CC, None)
    result.pop(BCC, None)
    if len(topics) > 1:
        result[TOPICS] = " ".join(topics)
    return result


def topic_of(routing_key: str, headers: Mapping[str, Any] | None) -> str:
    """The event topic of a delivery: hubbub's header, else the (ladder-stripped) routing key."""
    topic = (headers or {}).get(TOPIC)
    if isinstance(topic, bytes):
        topic = topic.decode()
    if isinstance(topic, str) and topic:
        return topic
    stripped = delay.strip(routing_key)
    if stripped is not None and stripped[0] == delay.EVENT_MARK:
        return stripped[1]
    return routing_key


def topics_of(topic: str, headers: Mapping[str, Any]) -> tuple[str, ...]:
    """Every topic of a delivered event: ``hubbub-topics``, else ``topic`` plus ``CC``'s keys.

    ``CC`` is honoured whoever published (any AMQP client may use it); its
    keys are the topics themselves, or ladder keys for a delayed event.
    """
    listed = headers.get(TOPICS)
    if isinstance(listed, bytes):
        listed = listed.decode("utf-8", "replace")
    if isinstance(listed, str):
        listed = listed.split()
    if isinstance(listed, list | tuple) and listed:
        named = [_str(t) for t in listed]
        # Read only when it names the event's own topic first: a header from
        # elsewhere can add topics, never hide the one the event was routed by.
        if named[0] == topic and all(named):
            return _unique(named)  # type: ignore[arg-type]
    cc = headers.get(CC)
    if not isinstance(cc, list | tuple) or not cc:
        return (topic,)
    extra = []
    for key in cc:
        text = _str(key)
        if text:
            stripped = delay.strip(text)
            extra.append(stripped[1] if stripped and stripped[0] == delay.EVENT_MARK else text)
    return _unique([topic, *extra])


def _unique(topics: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(topics))


def matched_topics(topics: tuple[str, ...], subscribed: tuple[str, ...]) -> tuple[str, ...]:
    """The ``topics`` some pattern of ``subscribed`` matches (all of them when none does:
    a copy aimed at the subscriber, or patterns that changed since)."""
    if len(topics) == 1 or not subscribed:
        return topics
    hit = tuple(t for t in topics if any(patterns.matches(p, t) for p in subscribed))
    return hit or topics


def decode(
    routing_key: str,
    message: Message,
    *,
    subscriber: str | None = None,
    redelivered: bool = False,
    codecs: Codecs | None = None,
    subscribed: tuple[str, ...] = (),
) -> Event:
    """The event in a delivered ``message``; raises MalformedMessageError for what cannot be one.

    ``codecs`` decodes the body by its content type (:mod:`hubbub.codecs`);
    without, only JSON is an event. ``subscribed``: the subscriber's
    patterns, to tell which of an event's several topics it matched.
    """
    if codecs is not None:
        data = codecs.decode(message)
    else:
        if not _is_json(message.content_type):
            raise MalformedMessageError(
                f"unsupported content type {message.content_type!r} (expected JSON)"
            )
        try:
            data = orjson.loads(message.body)
        except orjson.JSONDecodeError as exc:
            raise MalformedMessageError(f"body is not valid JSON: {exc}") from exc
    raw = message.headers
    if raw:
        topic = topic_of(routing_key, raw)
        attempt = _int(raw.get(ATTEMPT), 1)
        headers = publisher_headers(raw)
        causation_id = _str(raw.get(CAUSATION))
        delay_ms = raw.get(DELAY_MS)
        delay_s = delay_ms / 1000 if isinstance(delay_ms, int) else None
        due = _time_ms(raw.get(DUE_MS))
        if CC in raw or TOPICS in raw:  # several topics
            headers.pop(CC, None)
            topics = topics_of(topic, raw)
            matched = matched_topics(topics, subscribed)
        else:
            topics = matched = (topic,)
    else:  # the common case: no retry, no delay, no cause
        (topic, topics), attempt, headers = _plain_topics(routing_key), 1, {}
        causation_id = delay_s = due = None
        matched = topics
    return _event(
        topic,
        data,
        message.message_id or content_id(message),
        attempt,
        headers,
        message.correlation_id,
        causation_id,
        _time(message.timestamp),
        delay_s,
        due,
        subscriber,
        redelivered,
        topics,
        matched,
    )


#: Positional, cheap ``Event(...)`` for decoding (every delivery builds one; it
#: always passes ``topics`` and ``matched``, which ``__post_init__`` would fill).
_event = builder(Event, skips_post_init=True)


@lru_cache(maxsize=4096)
def _plain_topics(routing_key: str) -> tuple[str, tuple[str, ...]]:
    """The topic, and its one-topic tuple, of a delivery without headers (remembered:
    a hub has few keys, and every event of a topic shares the tuple)."""
    topic = topic_of(routing_key, None)
    return topic, (topic,)


@lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    """Whether a content type is JSON's (remembered: a hub sees a handful of them)."""
    ctype = (content_type or JSON).split(";")[0].strip().lower()
    return ctype in (JSON, "text/json") or ctype.endswith("+json")


def content_id(message: Message) -> str:
    """A stable id for a message published without ``message_id``.

    Derived from what a redelivery, a retry copy and a dead-letter copy all
    keep (body, timestamp, type, correlation id), so consumers deduplicating by
    id see the same id every time. Publish with a ``message_id`` to be sure.
    """
    digest = hashlib.sha256(message.body)
    digest.update(f"|{message.timestamp}|{message.type}|{message.correlation_id}".encode())
    return f"amqp-{digest.hexdigest()[:32]}"


@lru_cache(maxsize=256)
def _time(epoch: int | None) -> datetime | None:
    """A message's timestamp (whole seconds: the events of one second share one,
    remembered, as datetimes are immutable; building one costs ~1 us)."""
    return datetime.fromtimestamp(epoch, timezone.utc) if epoch else None


def _time_ms(epoch_ms: Any) -> datetime | None:
    if not isinstance(epoch_ms, int) or isinstance(epoch_ms, bool):
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)


def _int(value: Any, default: int) -> int:
    if value is None:  # the common case; a caught exception would cost more than decoding
        return default
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default


def _str(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


#: The event whose handler is running in this thread (events it publishes carry its ids).
current_event: ContextVar[Event | None] = ContextVar("hubbub_current_event", default=None)
