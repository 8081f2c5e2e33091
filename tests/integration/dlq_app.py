"""Handlers for the poison-message test, run by ``hubbub consume`` in a child process."""

from __future__ import annotations

import os

from hubbub.envelope import Event
from tests.support.recording import record


def fragile(event: Event) -> None:
    """Kill the whole process on a poison event (as a segfault would); record the others."""
    if isinstance(event.data, dict) and event.data.get("poison"):
        os._exit(17)
    record(event)
