"""Log output for the CLI: text (the default) or one JSON object per line.

Levels follow one rule: an event's outcome at DEBUG, failures at WARNING,
lifecycle (connected, consuming, stopping) at INFO. Log calls about one event
pass :func:`event_fields` as ``extra=`` so the JSON format carries
``event_id``, ``topic``, ``subscriber`` and ``attempt`` as fields. Every line,
in both formats, goes through :func:`hubbub.connection.mask`: no password of
a broker URL reaches a log, whatever logged it (the broker client included).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from hubbub.connection import mask

#: The fields :func:`event_fields` sets, copied into JSON lines when present.
EVENT_FIELDS = ("event_id", "topic", "subscriber", "attempt")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def event_fields(event_id: str, topic: str, subscriber: str, attempt: int) -> dict[str, Any]:
    """``extra=`` for a log call about one event."""
    return {"event_id": event_id, "topic": topic, "subscriber": subscriber, "attempt": attempt}


class MaskingFormatter(logging.Formatter):
    """The standard text format, with URL passwords masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, event fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EVENT_FIELDS:
            value = getattr(record, name, None)
            if value is not None and value != "":
                line[name] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return mask(json.dumps(line, default=str))


def setup(level: str | None = "INFO", fmt: str | None = "text") -> None:
    """Log to stderr at ``level`` in ``fmt`` (``text`` or ``json``).

    The broker client's own loggers (named by the transport) speak only at
    DEBUG: hubbub reports what they would, once, in its own words.
    """
    level = (level or "INFO").upper()
    fmt = (fmt or "text").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else MaskingFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    from hubbub.transport import client_loggers  # the transport loads on first use

    for name in client_loggers():
        logging.getLogger(name).setLevel(logging.CRITICAL if level != "DEBUG" else logging.INFO)
