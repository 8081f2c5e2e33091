"""Which queue an admin command reads, and where its replays go.

A subscriber's failed events live in its dead-letter queue and are replayed
to *its own queue only*, through the default exchange (routing key = queue
name), so no other subscriber of the topic sees them twice. Events in the
hub's unrouted queue (``unrouted``, a name no subscriber may take) are
replayed to the hub exchange under their topic, and only once some
subscriber's binding matches that topic; the others stay parked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hubbub.admin.records import FailedEvent
from hubbub.topology import patterns
from hubbub.topology.names import RESERVED_SUBSCRIBERS, SUBSCRIBER_NAME, HubNames

#: The name that stands for the hub's unrouted queue in ``hubbub dlq`` commands.
UNROUTED = "unrouted"


@dataclass(frozen=True, slots=True)
class Source:
    """A parking queue: one subscriber's DLQ, or the hub's unrouted queue."""

    #: The subscriber's name, or :data:`UNROUTED`.
    name: str
    queue: str

    @property
    def subscriber(self) -> str | None:
        """The subscriber whose failures these are (None for the unrouted queue)."""
        return None if self.name == UNROUTED else self.name


def source(names: HubNames, name: str) -> Source:
    """The queue ``name`` designates in hub ``names``."""
    if name == UNROUTED:
        return Source(UNROUTED, names.unrouted)
    return Source(name, names.dead_letter_queue(name))


@dataclass(frozen=True, slots=True)
class ToSubscriber:
    """Replays go back to one subscriber's queue, and to it alone."""

    queue: str

    def route(self, event: FailedEvent) -> tuple[str, str] | str:
        """``(exchange, routing key)`` of the copy."""
        return "", self.queue

    def describe(self) -> str:
        return f"queue {self.queue}"


@dataclass(frozen=True, slots=True)
class ToHub:
    """Replays go to the hub under their topic, if a bound pattern matches it now."""

    exchange: str
    bound: tuple[str, ...]

    def route(self, event: FailedEvent) -> tuple[str, str] | str:
        """``(exchange, topic)``, or why the event stays parked.

        An event of several topics goes when a bound pattern matches any of
        them (its copy lists the others in ``CC``).
        """
        topics = event.topics
        for topic in topics:
            if patterns.topic_problems(topic):
                return f"topic {topic!r} cannot be published"
        if not any(patterns.matches(p, t) for t in topics for p in self.bound):
            return f"no subscriber for {', '.join(topics)}"
        return self.exchange, event.topic

    def describe(self) -> str:
        return f"hub {self.exchange}"


def subscribers_in(names: HubNames, queues: Iterable[str]) -> list[str]:
    """Subscribers whose queue and dead-letter queue both appear in ``queues``."""
    present = set(queues)
    prefix = f"{names.hub}."
    found = []
    for queue in sorted(present):
        name = queue.removeprefix(prefix)
        if (
            queue.startswith(prefix)
            and SUBSCRIBER_NAME.match(name)
            and name not in RESERVED_SUBSCRIBERS
            and names.dead_letter_queue(name) in present
        ):
            found.append(name)
    return found
