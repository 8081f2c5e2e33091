"""Delete chosen parked events for good.

Only the events the selection picks are removed (acked); every other one is
held and returned in place when the browse closes. An interrupted purge has
removed some of the chosen events and left the rest: run it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hubbub.admin.browse import Browser
from hubbub.admin.filters import Selection
from hubbub.admin.records import FailedEvent


@dataclass
class PurgeResult:
    """How many events a purge looked at and deleted, and their ids."""

    scanned: int = 0
    purged: int = 0
    ids: list[str] = field(default_factory=list)
    truncated: bool = False


def purge(
    browser: Browser,
    selection: Selection,
    *,
    subscriber: str | None,
    on_event: Callable[[FailedEvent], None] | None = None,
) -> PurgeResult:
    """Delete the events ``selection`` picks from ``browser``'s queue."""
    result = PurgeResult()
    for message, event in browser.events(subscriber):
        result.scanned += 1
        if not selection.matches(event):
            continue
        browser.ack(message)
        result.purged += 1
        result.ids.append(event.id)
        if on_event is not None:
            on_event(event)
    result.truncated = browser.truncated
    return result
