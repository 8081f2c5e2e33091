"""Read parked events: ``dlq show`` (the matching events) and ``dlq list`` (a summary).

Both stream the queue through a :class:`~hubbub.admin.browse.Browser`, so a
queue of any size is read in constant memory and left exactly as it was.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hubbub.admin.browse import Browser
from hubbub.admin.filters import Selection
from hubbub.admin.records import FailedEvent

#: Labels kept in a summary's "most common" list.
TOP = 3


def show(
    browser: Browser, selection: Selection, *, subscriber: str | None, limit: int | None = None
) -> Iterator[FailedEvent]:
    """The events of ``browser``'s queue that ``selection`` picks, head first, at most ``limit``."""
    if limit is not None and limit <= 0:
        return
    found = 0
    for _, event in browser.events(subscriber):
        if selection.matches(event):
            yield event
            found += 1
            if limit is not None and found >= limit:
                return


@dataclass(frozen=True, slots=True)
class Summary:
    """One parking queue at a glance (a row of ``dlq list``)."""

    name: str
    queue: str
    depth: int
    oldest: datetime | None
    #: Most common exception types (or broker reasons, or topics when unrouted), with counts.
    top: tuple[tuple[str, int], ...]
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "depth": self.depth,
            "oldest": self.oldest.isoformat(timespec="seconds") if self.oldest else None,
            "top": [{"label": label, "count": count} for label, count in self.top],
            "truncated": self.truncated,
        }


def summarize(browser: Browser, name: str, *, subscriber: str | None) -> Summary:
    """Depth, oldest failure and most common causes of one queue, read in one pass."""
    labels: Counter[str] = Counter()
    oldest: datetime | None = None
    for _, event in browser.events(subscriber):
        labels[label(event)] += 1
        when = event.first_failed or event.when
        if when is not None and (oldest is None or when < oldest):
            oldest = when
    return Summary(
        name,
        browser.queue,
        browser.depth,
        oldest,
        tuple(labels.most_common(TOP)),
        browser.truncated,
    )


def label(event: FailedEvent) -> str:
    """What ``dlq list`` counts an event under."""
    if event.subscriber is None:
        return event.topic
    if event.exception:
        return event.exception
    return f"[{event.reason}]"
