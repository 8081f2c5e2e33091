"""Async handlers for the shutdown and loop-lag fault tests, run by ``hubbub consume``.

They write :class:`tests.support.recording.Recording` lines (``start`` and
``done``, JSON with event id, pid, redelivered) to ``HUBBUB_RECORD_FILE``.
``sleepy`` awaits a time of 0.1 to 6 s fixed by the event's id, so a test
knows which events a shutdown timeout leaves unfinished;
``ASYNC_APP_FAST=1`` makes it not wait at all (a second consumer that only
has to drain the queue). ``block_or_work`` blocks the event loop with
``time.sleep`` for an event whose data says ``{"block": true}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

from hubbub.envelope import Event
from tests.support.recording import write

#: Seconds an event blocks the loop in block_or_work.
BLOCK = 1.5


def seconds(event_id: str) -> float:
    """0.1 to 6.0 s, the same for an event id in every process."""
    digest = hashlib.sha256(event_id.encode()).digest()
    return 0.1 + int.from_bytes(digest[:4], "big") % 5901 / 1000


async def sleepy(event: Event) -> None:
    write("start", event)
    if not os.environ.get("ASYNC_APP_FAST"):
        await asyncio.sleep(seconds(event.id))
    write("done", event)


async def block_or_work(event: Event) -> None:
    write("start", event)
    if isinstance(event.data, dict) and event.data.get("block"):
        time.sleep(BLOCK)  # the mistake the loop watch names
    else:
        await asyncio.sleep(0.05)
    write("done", event)
