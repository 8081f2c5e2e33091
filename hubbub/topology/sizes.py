"""Sizes as people write them in topology files: ``50GB``, ``500MB``, ``1GiB``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")


def parse_size(value: str | int) -> int:
    """Bytes in ``value``: a whole number, or ``50GB`` (10**9), ``1GiB`` (2**30), ``500MB``."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    unit = _UNITS.get(match["unit"].lower()) if match else None
    if match is None or unit is None:
        raise ValueError(f"not a size: {value!r} (write e.g. 500MB, 50GB, 1GiB)")
    return int(float(match["n"]) * unit)


def format_size(size: int) -> str:
    """``size`` bytes in the largest decimal unit it fills (``50000000000`` -> ``50 GB``)."""
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"
