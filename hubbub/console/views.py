"""Formatting for the pages (pure): times, rates, JSON, filters from a query string."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from hubbub.admin import select
from hubbub.admin.filters import Selection
from hubbub.console.service import Query

#: A URL's ``scheme://user:password@``, with bounded parts: the whole page is masked
#: (event data included, which anyone who can publish controls), so the pattern must
#: stay linear on any text, even many ``a://b:`` in a row, which still cost
#: :func:`hubbub.connection.mask` (made for URLs and log lines) quadratic time.
_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]{0,31}://[^:/@,\s]{0,256}:)[^\s,]{0,1024}@", re.I)

#: Query-string keys of the dead-letter filter form.
FILTER_KEYS = ("topic", "exception", "text", "since", "until")


def when(value: datetime | None, *, now: datetime | None = None) -> str:
    """``2024-05-01 09:00:03 (3h ago)``, or ``-``."""
    if value is None:
        return "-"
    now = now or datetime.now(timezone.utc)
    return f"{value:%Y-%m-%d %H:%M:%S} ({ago(now - value)})"


def ago(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}/s" if value < 100 else f"{value:.0f}/s"


def pretty(data: Any) -> str:
    """Indented JSON for a page (non-ASCII kept readable)."""
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def mask(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (linear time)."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***@", text)


def header_value(value: Any) -> str:
    """A header value as text; passwords in URLs masked (headers may carry URLs)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return mask(text)


def headers(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), header_value(v)) for k, v in sorted(values.items())]


def filters_from(params: Mapping[str, str]) -> dict[str, str]:
    """The filter fields a query string sets (blank ones dropped)."""
    return {k: params[k].strip() for k in FILTER_KEYS if params.get(k, "").strip()}


def selection_from(fields: Mapping[str, str], ids: list[str] | None = None) -> Selection:
    """A validated selection (ConfigurationError lists every bad field)."""
    return select(
        ids=ids or (),
        topic=fields.get("topic") or None,
        exception=fields.get("exception") or None,
        text=fields.get("text") or None,
        since=fields.get("since") or None,
        until=fields.get("until") or None,
    )


def query_from(params: Mapping[str, str], *, size: int) -> Query:
    """The page a query string asks for (``order=newest``, ``page=N``)."""
    try:
        page = max(1, min(int(params.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    return Query(
        selection_from(filters_from(params)),
        newest_first=params.get("order") == "newest",
        page=page,
        size=size,
    )
