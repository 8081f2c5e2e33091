"""Every broker name hubbub derives from a hub's name, in one place.

Internal (ladder) names carry a version because queue arguments cannot change
on an existing queue: a new layout gets new names instead of a
PRECONDITION_FAILED (NOTES.md, "Queue arguments cannot be changed").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Version of the internal layout, part of every ladder name.
LAYOUT_VERSION = "v1"
#: Subscriber names that would collide with a hub's own names.
RESERVED_SUBSCRIBERS = frozenset({"unrouted", "dlx", "dlq"})

HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SUBSCRIBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class HubNames:
    """The exchanges and queues of one hub."""

    hub: str

    @property
    def exchange(self) -> str:
        """The durable topic exchange events are published to."""
        return self.hub

    @property
    def unrouted(self) -> str:
        """Alternate exchange and queue that park events no subscriber matched."""
        return f"{self.hub}.unrouted"

    @property
    def dead_letter_exchange(self) -> str:
        """Direct exchange routing each subscriber's failures to its own DLQ."""
        return f"{self.hub}.dlx"

    @property
    def delivery(self) -> str:
        """Exchange the delay ladder delivers due events into."""
        return f"hubbub.{LAYOUT_VERSION}.{self.hub}.delivery"

    def level(self, level: int) -> str:
        """Exchange and queue of one ladder level (``2**level`` seconds)."""
        return f"hubbub.{LAYOUT_VERSION}.{self.hub}.delay.L{level:02d}"

    def queue(self, subscriber: str) -> str:
        """A subscriber's own durable queue."""
        return f"{self.hub}.{subscriber}"

    def dead_letter_queue(self, subscriber: str) -> str:
        """A subscriber's dead-letter queue."""
        return f"{self.hub}.{subscriber}.dlq"

    def owns(self, name: str) -> bool:
        """True when ``name`` is one this hub derives (for finding stale bindings and queues).

        Exact, not a prefix test: the names of another hub that starts with
        this one's (``events.staging`` beside ``events``) are not this hub's,
        so ``plan`` never reports, and ``apply`` never unbinds, another hub's
        objects.
        """
        if name in (self.exchange, self.unrouted, self.dead_letter_exchange, self.delivery):
            return True
        hub = re.escape(self.hub)
        ladder = rf"hubbub\.{LAYOUT_VERSION}\.{hub}\.delay\.L\d\d"
        subscriber = rf"{hub}\.{SUBSCRIBER_NAME.pattern[1:-1]}(\.dlq)?"
        return re.fullmatch(f"{ladder}|{subscriber}", name) is not None
