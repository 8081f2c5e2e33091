"""A handler that records every event it runs to a file, for tests across processes.

Point a subscriber's handler at ``tests.support.recording:record`` and set
``HUBBUB_RECORD_FILE``; each run appends a ``start`` line before the work and a
``done`` line after it (JSON: event id, pid, attempt, redelivered), in one
``write`` each, so lines from several processes never interleave. Set
``HUBBUB_RECORD_SLEEP`` (seconds) to make the handler slow. :class:`Recording`
reads the file back and counts what ran where.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubbub.envelope import Event

FILE_ENV, SLEEP_ENV = "HUBBUB_RECORD_FILE", "HUBBUB_RECORD_SLEEP"


def record(event: Event) -> None:
    """Record ``start``, sleep ``HUBBUB_RECORD_SLEEP`` s, record ``done``."""
    write("start", event)
    time.sleep(float(os.environ.get(SLEEP_ENV) or 0))
    write("done", event)


def write(what: str, event: Event) -> None:
    """Append one ``what`` line for ``event`` (one write: lines of processes never mix)."""
    line = {
        "what": what,
        "id": event.id,
        "pid": os.getpid(),
        "attempt": event.attempt,
        "redelivered": event.redelivered,
        "at": time.time(),
    }
    data = (json.dumps(line) + "\n").encode()
    fd = os.open(os.environ[FILE_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def written_lines(path: Path) -> list[str]:
    """The lines of ``path`` its writers finished: a reader may see a line another
    process is still writing (one ``write`` is atomic among appenders, not for a
    reader), so a last line without its newline is left for the next read."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    return [line for line in lines[:-1] if line.strip()]  # the part after the last newline


@dataclass(frozen=True)
class Recording:
    """What the recording handler wrote to ``path``."""

    path: Path

    def lines(self, what: str | None = None) -> list[dict[str, Any]]:
        rows = [json.loads(x) for x in written_lines(self.path)]
        return [r for r in rows if what is None or r["what"] == what]

    def done(self, pid: int | None = None) -> Counter[str]:
        """How many times each event id was handled to the end (by ``pid``, if given)."""
        return Counter(r["id"] for r in self.lines("done") if pid is None or r["pid"] == pid)

    def started(self, pid: int | None = None) -> Counter[str]:
        return Counter(r["id"] for r in self.lines("start") if pid is None or r["pid"] == pid)

    def wait_done(self, ids: set[str], timeout: float) -> Counter[str]:
        """Poll until every id in ``ids`` was handled (or ``timeout``); the final counts."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.done()
            if ids <= set(done) or time.monotonic() > deadline:
                return done
            time.sleep(0.1)
