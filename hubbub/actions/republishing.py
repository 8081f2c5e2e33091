"""``handler: republish``: emit the event again under other topics, optionally later.

Chains are configured in the file: a subscriber on ``order.placed`` with
``topic: order.follow_up`` and ``delay: 2d`` makes every order, two days
later, an ``order.follow_up`` event that other subscribers (a ``webhook``,
an app's handler) receive. The copy is a new event (its own id) with the
same data and publisher headers, the handled event's correlation id, and
its id as causation id (:func:`hubbub.publish`), so a chain can be traced.

A subscriber must not republish to a topic its own patterns match: every
copy would come back to it, without end.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from hubbub import current, envelope
from hubbub.topology import delay as ladder
from hubbub.topology import patterns
from hubbub.topology.model import Seconds


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class RepublishSettings(BaseModel):
    """``settings:`` of a ``republish`` subscriber."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The topic (or topics) the copy is published under.
    topic: Annotated[tuple[str, ...], BeforeValidator(_listed), Field(min_length=1)]
    #: Hold the copy this long first ("2h", "3d"); None: at once.
    delay: Annotated[Seconds, Field(gt=0, le=ladder.MAX_DELAY_SECONDS)] | None = None

    @field_validator("topic")
    @classmethod
    def _topics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [p for topic in value for p in patterns.topic_problems(topic)]
        if problems:
            raise ValueError("; ".join(problems))
        return value


def republish(event: envelope.Event, *, settings: RepublishSettings) -> None:
    """Publish ``event``'s data again under ``settings.topic`` (one event, all its topics)."""
    topics = settings.topic
    current.publish(
        topics[0] if len(topics) == 1 else list(topics),
        event.data,
        headers=dict(event.headers) or None,
        delay=settings.delay,
    )
