"""The topology: which events reach which subscribers, and how they retry.

A pure, frozen, validated model with no I/O. It is built from a YAML file
(:mod:`hubbub.topology.loader`) or in code (``@hub.subscriber``); both front
doors end here so there is one set of rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

from hubbub.topology import delay, patterns
from hubbub.topology.durations import parse_duration
from hubbub.topology.names import HUB_NAME, RESERVED_SUBSCRIBERS, SUBSCRIBER_NAME, HubNames
from hubbub.topology.sizes import parse_size

_STRICT = ConfigDict(extra="forbid", frozen=True)

#: Attempts (the first delivery included) before an event is dead-lettered.
DEFAULT_ATTEMPTS = 5
#: Wait before the second attempt; it doubles for each attempt after that.
DEFAULT_BACKOFF = 2.0
#: The longest wait between two attempts.
DEFAULT_MAX_BACKOFF = 600.0
#: Unacked events a consumer holds per subscriber.
DEFAULT_PREFETCH = 50
#: Redeliveries (e.g. after consumer crashes) before the broker dead-letters.
DEFAULT_DELIVERY_LIMIT = 20
#: Seconds a handler may run before its event is failed (and retried) and its
#: thread written off: well below RabbitMQ's default ``consumer_timeout`` (30 min),
#: so a hung handler never makes the broker close the channel, which would give
#: back every prefetched event and count it towards the delivery limit.
DEFAULT_TIMEOUT = 300.0
#: Most members a quorum queue may ask for; RabbitMQ advises 3, 5 or 7.
MAX_REPLICAS = 99
#: Longest ``delay:`` of a subscriber: a queue's ``x-message-ttl`` is at most
#: 2**32-1 ms; 49 days stays below it. Longer waits: delay the event itself
#: (the ladder holds 8.5 years) or chain ``republish`` actions.
MAX_SUBSCRIBER_DELAY = 49 * 86400
#: Built-in actions a file may name by their short name (``handler: webhook``).
BUILTIN_ACTIONS = frozenset({"webhook", "republish", "log"})


def _pattern(value: str) -> str:
    problems = patterns.pattern_problems(value)
    if not problems and len(value.encode()) + delay.KEY_OVERHEAD > patterns.MAX_KEY_BYTES:
        problems.append(
            f"pattern {value!r} is too long to be bound for delayed events "
            f"(at most {patterns.MAX_KEY_BYTES - delay.KEY_OVERHEAD} bytes)"
        )
    if problems:
        raise ValueError("; ".join(problems))
    return value


#: Longest hub and subscriber names: every broker name derived from them
#: (``hubbub.v1.<hub>.delay.L00``, ``<hub>.<subscriber>.dlq``, the ladder's
#: retry keys) then stays within AMQP's 255-byte limit. Names are ASCII.
MAX_HUB_NAME, MAX_SUBSCRIBER_NAME = 120, 100


def _hub_name(value: str) -> str:
    _name(value, "hub name", HUB_NAME, MAX_HUB_NAME, "letters, digits, '.', '_', '-'")
    if value.endswith(".wait"):
        raise ValueError(
            f"hub name {value!r} ends with '.wait': hubbub names hub "
            f"{value.removesuffix('.wait')!r}'s wait queues that way, so the two hubs' names "
            "could collide; pick another name"
        )
    return value


def _subscriber_name(value: str) -> str:
    _name(
        value, "subscriber name", SUBSCRIBER_NAME, MAX_SUBSCRIBER_NAME, "letters, digits, '_', '-'"
    )
    if value in RESERVED_SUBSCRIBERS:
        raise ValueError(f"subscriber name {value!r} is reserved by hubbub")
    return value


def _name(value: str, what: str, allowed: re.Pattern[str], longest: int, chars: str) -> str:
    if len(value.encode()) > longest:
        raise ValueError(
            f"{what} is {len(value.encode())} bytes, at most {longest} so that the broker "
            "names derived from it stay within AMQP's 255-byte limit"
        )
    if not allowed.match(value):
        raise ValueError(
            f"{what} {value!r} may only contain {chars}, starting with a letter or digit"
        )
    return value


def _handler_ref(value: str) -> str:
    if value in BUILTIN_ACTIONS:
        return f"hubbub.actions:{value}"
    module, sep, attr = value.partition(":")
    if not (sep and module and attr):
        known = ", ".join(sorted(BUILTIN_ACTIONS))
        raise ValueError(
            f"handler {value!r} must be written 'package.module:function' "
            f"or name a built-in action ({known})"
        )
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Bytes = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
Pattern = Annotated[str, AfterValidator(_pattern)]
HandlerRef = Annotated[str, AfterValidator(_handler_ref)]
HubName = Annotated[str, AfterValidator(_hub_name)]
SubscriberName = Annotated[str, AfterValidator(_subscriber_name)]


@dataclass(config=_STRICT)
class RetryPolicy:
    """How a subscriber retries a failing event before dead-lettering it.

    Attempt ``n`` (n >= 2) waits ``min(backoff * 2**(n-2), max_backoff)``
    seconds, rounded up to whole seconds (the delay ladder's unit); with
    ``jitter`` a random half of that wait is dropped ("equal jitter", see
    :func:`hubbub.consumers.retry.backoff`). Waits happen in the broker's
    delay ladder, so both durations are capped at its longest delay.
    """

    attempts: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_ATTEMPTS
    backoff: Annotated[Seconds, Field(le=delay.MAX_DELAY_SECONDS)] = DEFAULT_BACKOFF
    max_backoff: Annotated[Seconds, Field(le=delay.MAX_DELAY_SECONDS)] = DEFAULT_MAX_BACKOFF
    jitter: bool = True
    #: Exception types (``ValueError`` or ``pkg.mod.Error``) dead-lettered at once.
    dont_retry: tuple[str, ...] = ()


@dataclass(config=_STRICT)
class Subscriber:
    """One subscriber: its own queue, the patterns bound to it, its handler."""

    name: SubscriberName
    handler: HandlerRef
    topics: Annotated[tuple[Pattern, ...], Field(min_length=1)]
    retry: RetryPolicy = RetryPolicy()
    prefetch: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_PREFETCH
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 1
    delivery_limit: Annotated[int, Field(ge=1)] = DEFAULT_DELIVERY_LIMIT
    #: The handler's time limit (see :mod:`hubbub.consumers.watchdog`).
    timeout: Annotated[Seconds, Field(gt=0)] = DEFAULT_TIMEOUT
    description: str = ""
    #: Seconds each matching event waits (in a TTL queue of its own) before
    #: this subscriber receives it; None: at once. Whole seconds.
    delay: Annotated[Seconds, Field(gt=0, le=MAX_SUBSCRIBER_DELAY)] | None = None
    #: Values the handler reads (thresholds, recipients, template names),
    #: checked against what the handler declares (its ``settings`` parameter).
    settings: dict[str, Any] = Field(default_factory=dict)
    #: How far back a *new* subscriber starts: ``topology apply`` binds its
    #: queue, then replays the hub archive's events of that window to it
    #: (see :mod:`hubbub.admin.archive`). None: it starts with what comes next.
    backfill: Annotated[Seconds, Field(gt=0)] | None = None
    #: Handle each event once: the consumer's inbox (:mod:`hubbub.inbox`) records
    #: the ids this subscriber handled and skips one that comes again
    #: (redelivered after a crash, replayed from the archive or the dead letters).
    #: Its consumer needs an inbox store (``hubbub consume --inbox DSN``).
    idempotent: bool = False


@dataclass(config=_STRICT)
class Archive:
    """The hub's archive: a stream holding a copy of every event the hub routes.

    ``retention`` (``x-max-age``) and ``max_size`` (``x-max-length-bytes``)
    bound it; the broker applies them a whole segment at a time
    (``segment_size``, ``x-stream-max-segment-size-bytes``, its default 500 MB),
    so an archive holds a little more than either bound. See docs/archive.md.
    """

    retention: Annotated[Seconds, Field(gt=0)] | None = None
    max_size: Bytes | None = None
    segment_size: Bytes | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Archive:
        if self.retention is None and self.max_size is None:
            raise ValueError(
                "an archive needs a retention (e.g. 30d) or a max_size (e.g. 50GB), "
                "else it grows until the broker's disk is full"
            )
        return self


@dataclass(config=_STRICT)
class Topology:
    """A hub and its subscribers.

    ``replicas`` is how many cluster nodes hold a copy of each of the hub's
    quorum queues (``x-quorum-initial-group-size``; the broker caps it at the
    cluster's size). None leaves it to the broker (``quorum_cluster_size``).
    It is a queue argument, fixed when a queue is created: changing it for
    existing queues is a conflict ``apply`` refuses (see docs/cluster.md).
    """

    hub: HubName
    subscribers: tuple[Subscriber, ...] = ()
    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] | None = None
    #: Keep every event the hub routes in a stream (None: no archive).
    archive: Archive | None = None

    @model_validator(mode="after")
    def _unique(self) -> Topology:
        seen: set[str] = set()
        problems = []
        for sub in self.subscribers:
            if sub.name in seen:
                problems.append(f"subscriber {sub.name!r} is defined twice")
            seen.add(sub.name)
            if sub.backfill is not None and self.archive is None:
                problems.append(
                    f"subscriber {sub.name!r} asks for a backfill but hub {self.hub!r} keeps "
                    "no archive to backfill from: add e.g. 'archive: {retention: 30d}' to the hub"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def names(self) -> HubNames:
        return HubNames(self.hub)

    def subscriber(self, name: str) -> Subscriber:
        """The subscriber called ``name``; KeyError names the known ones."""
        for sub in self.subscribers:
            if sub.name == name:
                return sub
        known = ", ".join(s.name for s in self.subscribers) or "none"
        raise KeyError(f"no subscriber {name!r} in hub {self.hub!r} (known: {known})")

    def matching(self, topic: str) -> Iterator[Subscriber]:
        """Subscribers that receive an event of ``topic`` (one copy each)."""
        for sub in self.subscribers:
            if any(patterns.matches(p, topic) for p in sub.topics):
                yield sub
