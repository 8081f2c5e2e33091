"""``handler: log``: write each event to the log, for experiments and audits.

``message`` is a template in Python's ``str.format`` syntax over the
event's fields (:data:`FIELDS`), e.g. ``"signup of {data[email]} ({id})"``;
items are read with ``[key]``, attributes not at all. A template that does
not fit an event (a missing key) still logs: the default line, with why.
"""

from __future__ import annotations

import logging
import re
import string
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

from hubbub import envelope
from hubbub.logs import event_fields

log = logging.getLogger("hubbub.actions.log")

#: What a ``message`` template may name.
FIELDS = (
    "id",
    "topic",
    "topics",
    "data",
    "attempt",
    "subscriber",
    "correlation_id",
    "causation_id",
    "timestamp",
    "headers",
)
#: The line by default; for an event of several topics, ``{topic}`` lists them all.
DEFAULT_MESSAGE = "event {id} ({topic}): {data}"

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class LogSettings(BaseModel):
    """``settings:`` of a ``log`` subscriber."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The level the line is logged at.
    level: Annotated[Level, BeforeValidator(_upper)] = "INFO"
    #: The line, a template over :data:`FIELDS`.
    message: str = DEFAULT_MESSAGE

    @field_validator("message")
    @classmethod
    def _template(cls, value: str) -> str:
        problems = template_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value


def template_problems(template: str) -> list[str]:
    """Why ``template`` cannot be rendered for an event; [] when it can."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return [f"not a valid template ({exc}): write fields as {{topic}} or {{data[key]}}"]
    problems = []
    for field in fields:
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        outside_items = re.sub(r"\[[^\]]*\]", "", field[len(root) :])
        if root not in FIELDS:
            problems.append(f"unknown field {{{root}}}: use one of {', '.join(FIELDS)}")
        elif "." in outside_items:
            problems.append(f"{{{field}}} reads an attribute: read items with [key] instead")
    return problems


def log_event(event: envelope.Event, *, settings: LogSettings) -> None:
    """Log ``event`` at ``settings.level`` with ``settings.message``."""
    values = _fields(event)
    try:
        if settings.message == DEFAULT_MESSAGE:
            line = _default(values)
        else:
            line = settings.message.format_map(values)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        line = f"{_default(values)} (message template failed: {why})"
    extra = event_fields(event.id, event.topic, event.subscriber or "", event.attempt)
    log.log(logging.getLevelName(settings.level), "%s", line, extra=extra)


def _default(values: dict[str, Any]) -> str:
    """:data:`DEFAULT_MESSAGE`, naming every topic of an event published under several."""
    return DEFAULT_MESSAGE.format_map({**values, "topic": ", ".join(values["topics"])})


def _fields(event: envelope.Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "topic": event.topic,
        "topics": event.topics,
        "data": event.data,
        "attempt": event.attempt,
        "subscriber": event.subscriber,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "timestamp": event.timestamp.isoformat() if event.timestamp else None,
        "headers": dict(event.headers),
    }
