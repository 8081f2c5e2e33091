"""Handlers for the hung-handler fault tests, run by ``hubbub consume`` in a child process.

``maybe_hang`` records every event like :func:`tests.support.recording.record`;
an event whose data says ``{"hang": true}`` is recorded as ``hang`` and then
never returns, like a handler stuck on a socket without a timeout.
"""

from __future__ import annotations

import json
import os
import threading
import time

from hubbub.envelope import Event
from tests.support.recording import FILE_ENV, record


def maybe_hang(event: Event) -> None:
    if isinstance(event.data, dict) and event.data.get("hang"):
        line = {"what": "hang", "id": event.id, "pid": os.getpid(), "attempt": event.attempt}
        with open(os.environ[FILE_ENV], "a") as out:
            out.write(json.dumps({**line, "at": time.time()}) + "\n")
        threading.Event().wait()  # forever
    record(event)
