"""The one check every fast frame path passes before it replaces pika's own.

hubbub's fast paths (writing publishes, reading deliveries, coalescing
writes) reach into pika 1.x private attributes. A pika release may rename
any of them; a renamed attribute must not fail inside the I/O loop, where
the error would surface as a lost connection. So each path names, at
install time, every internal it touches; :func:`usable` checks them, and
when one is missing (or ``HUBBUB_FAST_FRAMES=0`` asks for pika's own paths,
for the benchmark) the caller uses pika's public path instead, and one log
line per path and process says so.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

log = logging.getLogger("hubbub.transport")

#: Set to ``0`` to run pika's own frame paths everywhere (what ``make bench`` compares).
FAST_FRAMES_ENV = "HUBBUB_FAST_FRAMES"

_told: set[str] = set()
_told_lock = threading.Lock()


def fast_frames() -> bool:
    """False when ``HUBBUB_FAST_FRAMES=0`` turns the fast frame paths off."""
    return os.environ.get(FAST_FRAMES_ENV, "1").strip() != "0"


def missing(internals: Iterable[tuple[object, str]]) -> list[str]:
    """``Owner.attribute`` for each ``(owner, attribute)`` of ``internals`` that is absent."""
    return [
        f"{_name(owner)}.{attribute}"
        for owner, attribute in internals
        if not hasattr(owner, attribute)
    ]


def usable(path: str, fallback: str, internals: Iterable[tuple[object, str]]) -> bool:
    """Whether the fast ``path`` may run: switched on, and every internal it touches exists.

    ``internals`` pairs an owner (an instance or a class) with the name of
    an attribute the path reads, writes or calls. When the answer is False,
    an INFO line (once per ``path``) names the reason and the ``fallback``
    in use; the caller then takes pika's own path.
    """
    if not fast_frames():
        _tell(path, f"{path}: {FAST_FRAMES_ENV}=0, using {fallback}")
        return False
    absent = missing(internals)
    if absent:
        _tell(
            path,
            f"{path}: this pika lacks {', '.join(absent)}; using {fallback} (correct, only slower)",
        )
        return False
    return True


def _tell(path: str, line: str) -> None:
    with _told_lock:
        if path in _told:
            return
        _told.add(path)
    log.info(line)


def _name(owner: object) -> str:
    return owner.__name__ if isinstance(owner, type) else type(owner).__name__
