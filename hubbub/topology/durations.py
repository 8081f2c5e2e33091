"""Durations as people write them in topology files and on the command line."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?\s*$")


def parse_duration(value: str | float | int | timedelta) -> float:
    """Seconds in ``value``: a number, a timedelta, or ``90s``, ``10m``, ``2h``, ``3d``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (write e.g. 30, 90s, 10m, 2h, 3d)")
        seconds = float(match["n"]) * _UNITS[match["unit"] or "s"]
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"a duration must be a finite number >= 0, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact way to write ``seconds`` back (``3600`` -> ``1h``)."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
