"""What the console's pages ask of the admin API, in the shape they need it.

Blocking (a broker session): the routes call these from worker threads. Each parking
queue has a lock: one browse of a queue at a time (a second one would find
the queue busy), actions wait for a running read.

Reading a page of dead letters is one pass over the queue through
:meth:`Admin.events <hubbub.admin.Admin.events>`, in a thread of its own:

- oldest first, the page is answered as soon as its last row is read; the
  pass then goes on to the end, counting every event by exception type
  (:func:`hubbub.admin.listing.label`) and the matches of the filter. A
  browse must read to the end anyway to leave the queue in order (see
  :mod:`hubbub.admin.browse`), so the counts cost nothing more;
- newest first needs the whole pass: it keeps the last ``page * size``
  matches only (bounded memory), and answers at the end.

The counts of the last complete pass are kept (:class:`Tally`), one per
queue, so the groups show up without another pass. Memory stays flat: at
most one page of events and a bounded number of group labels
(:data:`MAX_GROUPS`) are held, whatever the queue's depth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hubbub.admin import Admin, FailedEvent, PurgeResult, ReplayResult, Selection
from hubbub.admin.filters import EVERYTHING
from hubbub.admin.listing import label
from hubbub.admin.rates import QueueRates
from hubbub.admin.status import HubStatus
from hubbub.topology.model import Topology

log = logging.getLogger(__name__)

#: Distinct group labels counted per queue; the rest are counted under :data:`OTHER`.
MAX_GROUPS = 200
OTHER = "(other)"
#: Credit of the browse's successive consumers. Smaller than the CLI's: the
#: console is a long-lived process, and a consumer's credit is what the
#: client may buffer. 32 consumers still reach 1000 + 5000 + 30 * 20000 events.
CHUNKS = (1000, 5000, 20000)


@dataclass(frozen=True, slots=True)
class Query:
    """One page of one parking queue: which events, in which order."""

    selection: Selection = EVERYTHING
    newest_first: bool = False
    page: int = 1
    size: int = 50

    @property
    def skip(self) -> int:
        return (self.page - 1) * self.size


@dataclass(frozen=True, slots=True)
class Page:
    """The rows of a page; ``matched`` is exact only when ``complete``."""

    events: tuple[FailedEvent, ...]
    matched: int
    complete: bool
    scanned: int
    seconds: float


@dataclass
class Tally:
    """Counts of one complete pass over a queue (the groups of its page)."""

    name: str
    scanned: int = 0
    groups: Counter[str] = field(default_factory=Counter)
    selection: Selection = EVERYTHING
    matched: int = 0
    at: float = 0.0

    def count(self, event: FailedEvent) -> None:
        self.scanned += 1
        key = label(event)
        if key in self.groups or len(self.groups) < MAX_GROUPS:
            self.groups[key] += 1
        else:
            self.groups[OTHER] += 1


@dataclass(frozen=True, slots=True)
class Overview:
    """The hub at a glance: counts, rates and (with a topology file) topics and retries."""

    status: HubStatus
    rates: dict[str, QueueRates]
    topology: Topology | None


class ConsoleService:
    """The console's one door to the broker (thread-safe; one per app)."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._tallies: dict[str, Tally] = {}

    @property
    def hub(self) -> str:
        return self.admin.names.hub

    def overview(self) -> Overview:
        return Overview(self.admin.status(), self.admin.rates(), self.admin.topology)

    # -- reading ------------------------------------------------------------

    def page(self, name: str, query: Query) -> Page:
        """One page of ``name``'s parked events (see the module docstring)."""
        answer: Future[Page] = Future()
        thread = threading.Thread(
            target=self._pass, args=(name, query, answer), name=f"console {name}", daemon=True
        )
        thread.start()
        return answer.result()

    def event(self, name: str, event_id: str) -> FailedEvent | None:
        """The parked event ``event_id`` of ``name`` (None when it is not there)."""
        page = self.page(name, Query(Selection(ids=frozenset({event_id})), size=1))
        return page.events[0] if page.events else None

    def tally(self, name: str, *, wait: bool = True) -> Tally | None:
        """The counts of the last complete pass over ``name``.

        ``wait``: let a running pass finish first (its counts are the freshest).
        """
        if wait:
            with self._lock(name):
                pass
        return self._tallies.get(name)

    def _pass(self, name: str, query: Query, answer: Future[Page]) -> None:
        started = time.monotonic()
        try:
            with self._lock(name):
                tally = self._read(name, query, answer, started)
            self._tallies[name] = tally
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting page, or logged
            if answer.done():
                log.warning("console: reading %s: %s", name, exc)
            else:
                answer.set_exception(exc)

    def _read(self, name: str, query: Query, answer: Future[Page], started: float) -> Tally:
        tally = Tally(name, selection=query.selection)
        keep: deque[FailedEvent] = deque(maxlen=query.skip + query.size)
        rows: list[FailedEvent] = []
        with self.admin.events(name) as found:
            for event in found:
                tally.count(event)
                if not query.selection.matches(event):
                    continue
                tally.matched += 1
                if query.newest_first:
                    keep.append(event)
                elif tally.matched > query.skip and len(rows) < query.size:
                    rows.append(event)
                    if len(rows) == query.size:
                        answer.set_result(
                            Page(tuple(rows), tally.matched, False, tally.scanned, _since(started))
                        )
        tally.at = time.time()
        if not answer.done():
            if query.newest_first:
                rows = list(reversed(keep))[query.skip :]
            page = Page(tuple(rows), tally.matched, True, tally.scanned, _since(started))
            answer.set_result(page)
        return tally

    # -- changing -------------------------------------------------------------

    def replay(self, name: str, selection: Selection, *, user: str) -> ReplayResult:
        with self._changing(name, "replay", selection, user):
            result = self.admin.replay(name, selection)
        log.info(
            "console: %s replayed %d event(s) of %s (%s) to %s",
            user, result.moved, name, _brief(selection), result.target,
        )  # fmt: skip
        return result

    def replay_edited(self, name: str, event_id: str, data: Any, *, user: str) -> ReplayResult:
        one = Selection(ids=frozenset({event_id}))
        with self._changing(name, "replay an edited copy of", one, user):
            result = self.admin.replay_edited(name, event_id, data)
        log.info("console: %s replayed an edited copy of event %s of %s", user, event_id, name)
        return result

    def purge(self, name: str, selection: Selection, *, user: str) -> PurgeResult:
        with self._changing(name, "purge", selection, user):
            result = self.admin.purge(name, selection)
        log.info(
            "console: %s purged %d event(s) of %s (%s)",
            user, result.purged, name, _brief(selection),
        )  # fmt: skip
        return result

    @contextmanager
    def _changing(self, name: str, verb: str, selection: Selection, user: str) -> Iterator[None]:
        """Hold the queue's lock; log the attempt and its failure, drop stale counts."""
        log.info("console: %s asks to %s %s (%s)", user, verb, name, _brief(selection))
        with self._lock(name):
            try:
                yield
            except Exception as exc:
                log.warning("console: %s could not %s %s: %s", user, verb, name, exc)
                raise
            finally:
                self._tallies.pop(name, None)

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


def _since(started: float) -> float:
    return time.monotonic() - started


def _brief(selection: Selection) -> str:
    """The selection for a log line, cut short: its text comes from a form, and log
    lines are masked by a pattern that slows down on long words."""
    text = selection.describe()
    return text if len(text) <= 200 else text[:200] + "..."
