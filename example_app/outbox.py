"""Where the example's actions "send" things: one JSON line per action in a file.

Real mail is out of scope; an outbox file lets the demo and the tests see
exactly what each action did. ``HUBBUB_OUTBOX`` names the file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()


def path() -> Path:
    return Path(os.environ.get("HUBBUB_OUTBOX", "outbox/actions.jsonl"))


def write(action: str, **fields: Any) -> None:
    """Append one action record (thread- and process-safe for small lines)."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"action": action, **fields}, sort_keys=True)
    with _lock, target.open("a", encoding="utf-8") as out:
        out.write(line + "\n")


def read() -> list[dict[str, Any]]:
    target = path()
    if not target.exists():
        return []
    return [json.loads(line) for line in target.read_text().splitlines() if line.strip()]
