"""Which parked events an operator means: ids, exception type, topic, time, text.

Pure.

Criteria combine with AND; several ``--id`` values combine with OR. A
selection with no criterion matches everything (``--all``). Every problem in
the options is reported at once, as one line each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from hubbub.admin.records import FailedEvent
from hubbub.errors import ConfigurationError
from hubbub.topology import patterns
from hubbub.topology.durations import parse_duration

_EXCEPTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class Selection:
    """Criteria an event must meet; build it with :func:`select` to validate them."""

    ids: frozenset[str] = frozenset()
    #: An exception type: ``ValueError``, ``PaymentDeclined`` or ``app.errors.PaymentDeclined``.
    exception: str | None = None
    #: A topic pattern with the broker's semantics (``user.*``, ``billing.#``).
    topic: str | None = None
    #: Only events whose last failure (or publication, when unrouted) is at or after this.
    since: datetime | None = None
    #: Only events dated strictly before this (same date as ``since``).
    until: datetime | None = None
    #: Only events containing this text (case-insensitive) in their exception type or
    #: message, topic, id or data as parked (the console's search box).
    text: str | None = None

    @property
    def everything(self) -> bool:
        """True when no criterion is set."""
        return not (
            self.ids or self.exception or self.topic or self.since or self.until or self.text
        )

    def matches(self, event: FailedEvent) -> bool:
        """True when ``event`` meets every criterion."""
        if self.ids and event.id not in self.ids:
            return False
        if self.exception and not exception_matches(event.exception, self.exception):
            return False
        if self.topic and not any(patterns.matches(self.topic, t) for t in event.topics):
            return False
        when = event.when
        if self.since is not None and (when is None or when < self.since):
            return False
        if self.until is not None and (when is None or when >= self.until):
            return False
        return self.text is None or contains(event, self.text)

    def describe(self) -> str:
        """The criteria as a human reads them (``all events`` when there are none)."""
        parts = []
        if self.ids:
            parts.append("id " + ", ".join(sorted(self.ids)))
        if self.exception:
            parts.append(f"exception {self.exception}")
        if self.topic:
            parts.append(f"topic {self.topic}")
        if self.since:
            parts.append(f"failed since {self.since.isoformat(timespec='seconds')}")
        if self.until:
            parts.append(f"failed before {self.until.isoformat(timespec='seconds')}")
        if self.text:
            parts.append(f"containing {self.text!r}")
        return " and ".join(parts) or "all events"


#: The selection with no criterion: every event.
EVERYTHING = Selection()


def select(
    *,
    ids: Iterable[str] = (),
    exception: str | None = None,
    topic: str | None = None,
    since: str | datetime | timedelta | None = None,
    until: str | datetime | timedelta | None = None,
    text: str | None = None,
    now: datetime | None = None,
) -> Selection:
    """A validated :class:`Selection`; ConfigurationError lists every bad criterion."""
    problems: list[str] = []
    wanted = frozenset(i.strip() for i in ids if i.strip())
    if exception is not None and not _EXCEPTION.match(exception):
        problems.append(
            f"--exception {exception!r} is not an exception type name "
            "(write e.g. ValueError or app.errors.PaymentDeclined)"
        )
    if topic is not None:
        problems.extend(f"--topic: {p}" for p in patterns.pattern_problems(topic))
    moments: dict[str, datetime | None] = {}
    for option, value in (("since", since), ("until", until)):
        try:
            moments[option] = (
                None if value is None else parse_since(value, now or datetime.now(timezone.utc))
            )
        except ValueError as exc:
            problems.append(f"--{option}: {exc}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return Selection(
        wanted, exception, topic, moments["since"], moments["until"], (text or "").strip() or None
    )


def parse_since(value: str | datetime | timedelta, now: datetime) -> datetime:
    """A cutoff from a duration back from ``now`` (``90m``, ``1h``, ``2d``) or an ISO date."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, timedelta):
        return now - value
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a duration (30m, 1h, 2d) nor an ISO date (2024-05-01T10:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def contains(event: FailedEvent, text: str) -> bool:
    """True when ``text`` occurs (ignoring case) in what an operator reads of ``event``.

    The data is searched as parked (its JSON text), without decoding it.
    """
    needle = text.casefold()
    fields = (event.exception or "", event.message, *event.topics, event.id, event.reason)
    if any(needle in f.casefold() for f in fields):
        return True
    return needle in event.body.decode("utf-8", "replace").casefold()


def exception_matches(actual: str | None, wanted: str) -> bool:
    """True when ``actual`` (a qualified name) is ``wanted``, by full or short name."""
    if not actual:
        return False
    return actual == wanted or actual.endswith("." + wanted)
