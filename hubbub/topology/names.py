"""Every broker name hubbub derives from a hub's name, in one place.

Internal (ladder) names carry a version because queue arguments cannot change
on an existing queue: a new layout gets new names instead of a
PRECONDITION_FAILED (NOTES.md, "Queue arguments cannot be changed").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

#: Version of the internal layout, part of every ladder name.
LAYOUT_VERSION = "v1"
#: Subscriber names that would collide with a hub's own names.
RESERVED_SUBSCRIBERS = frozenset({"unrouted", "dlx", "dlq"})

#: What a broker name names: the two kinds of objects a hub declares.
Kind = Literal["exchange", "queue"]

HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SUBSCRIBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: An archive replay's id (see :mod:`hubbub.admin.archive`).
REPLAY_ID = re.compile(r"^[a-z0-9]{12}$")


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

    def wait_exchange(self, subscriber: str) -> str:
        """Fanout exchange into a subscriber's queue: where its delayed events land when due.

        Declared for every subscriber, delayed or not, so a wait queue left
        from an earlier ``delay:`` always has somewhere to drain into.
        """
        return f"hubbub.{LAYOUT_VERSION}.{self.hub}.wait.{subscriber}"

    def wait_queue(self, subscriber: str, seconds: int) -> str:
        """The queue where a subscriber's events wait ``seconds`` (its ``delay:``).

        The delay is in the name: a queue's TTL cannot change, so a new delay
        is a new queue, and the old one drains with the delay it was made with.
        """
        return f"{self.wait_exchange(subscriber)}.{seconds}s"

    def parse_wait_exchange(self, name: str) -> str | None:
        """The subscriber of one of this hub's wait exchanges, else None."""
        prefix = f"hubbub.{LAYOUT_VERSION}.{self.hub}.wait."
        subscriber = name[len(prefix) :] if name.startswith(prefix) else ""
        return subscriber if SUBSCRIBER_NAME.match(subscriber) else None

    def parse_wait_queue(self, name: str) -> tuple[str, int] | None:
        """``(subscriber, seconds)`` of one of this hub's wait queues, else None."""
        prefix = f"hubbub.{LAYOUT_VERSION}.{self.hub}.wait."
        if not name.startswith(prefix):
            return None
        subscriber, _, seconds = name[len(prefix) :].rpartition(".")
        if not (SUBSCRIBER_NAME.match(subscriber) and seconds.endswith("s")):
            return None
        digits = seconds[:-1]
        return (subscriber, int(digits)) if digits.isdigit() else None

    @property
    def applied(self) -> str:
        """Fanout exchange and queue holding the record of the last ``topology apply``.

        The queue keeps one message (``x-max-length: 1``: a new record drops
        the old): what was applied, so ``plan`` can say what a change means
        for what the broker does not show (settings, retry policies, handlers).
        See :mod:`hubbub.topology.record`.
        """
        return f"hubbub.{LAYOUT_VERSION}.{self.hub}.applied"

    @property
    def archive(self) -> str:
        """The stream holding a copy of every event the hub routes (``archive:``)."""
        return f"hubbub.{LAYOUT_VERSION}.{self.hub}.archive"

    def replay_progress(self, replay: str) -> str:
        """Queue holding the last copy an archive replay made (its progress; see
        :mod:`hubbub.admin.archive`)."""
        return f"hubbub.{LAYOUT_VERSION}.{self.hub}.replay.{replay}"

    def parse_replay_progress(self, name: str) -> str | None:
        """The replay id of one of this hub's progress queues, else None."""
        prefix = f"hubbub.{LAYOUT_VERSION}.{self.hub}.replay."
        replay = name[len(prefix) :] if name.startswith(prefix) else ""
        return replay if REPLAY_ID.match(replay) else None

    def owns(self, name: str, kind: Kind | None = None) -> bool:
        """True when ``name`` is one this hub derives (for finding stale bindings and queues).

        Exact, not a prefix test: the names of another hub that starts with
        this one's (``events.staging`` beside ``events``) are not this hub's,
        so ``plan`` never reports, and ``apply`` and ``destroy`` never touch,
        another hub's objects. Give ``kind`` whenever it is known: hub
        ``events``' subscriber ``staging`` has a *queue* ``events.staging``,
        which is hub ``events.staging``'s *exchange*.
        """
        if name in (self.unrouted, self.applied):  # both an exchange and a queue
            return True
        hub = re.escape(self.hub)
        sub = SUBSCRIBER_NAME.pattern[1:-1]
        ladder = rf"hubbub\.{LAYOUT_VERSION}\.{hub}\.delay\.L\d\d"
        exchange = name in (self.exchange, self.dead_letter_exchange, self.delivery) or bool(
            re.fullmatch(rf"{ladder}|hubbub\.{LAYOUT_VERSION}\.{hub}\.wait\.{sub}", name)
        )
        if kind == "exchange":
            return exchange
        own = rf"hubbub\.{LAYOUT_VERSION}\.{hub}"
        queue = re.fullmatch(
            rf"{ladder}|{hub}\.{sub}(\.dlq)?|{own}\.wait\.{sub}\.\d+s|{own}\.archive"
            rf"|{own}\.replay\.[a-z0-9]{{12}}",
            name,
        )
        return queue is not None if kind == "queue" else exchange or queue is not None
