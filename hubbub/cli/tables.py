"""Plain text output for admin commands: aligned tables, short times, JSON streams."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``rows`` under ``headers``, each column as wide as its widest cell."""
    cells = [[str(c) for c in headers], *([_cell(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """``2024-05-01 10:00:03 (3h ago)`` in UTC; ``-`` for no time."""
    if moment is None:
        return "-"
    now = now or datetime.now(timezone.utc)
    stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp} ({ago(now - moment)})"


def ago(delta: Any) -> str:
    """A time span rounded to its largest unit: ``42s ago``, ``3m``, ``5h``, ``2d``."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def clip(text: str | None, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def fixed(cells: Sequence[tuple[str, int]]) -> str:
    """One line of fixed-width columns (for output streamed row by row)."""
    return "  ".join(clip(text, width).ljust(width) for text, width in cells).rstrip()


def json_array(items: Iterable[Any]) -> Iterator[str]:
    """The pieces of one JSON array, produced item by item (constant memory)."""
    yield "["
    first = True
    for item in items:
        yield ("  " if first else ", ") + json.dumps(item, ensure_ascii=False, default=str)
        first = False
    yield "]"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return str(value)
