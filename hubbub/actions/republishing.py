"""``handler: republish``: emit the event again under other topics, optionally later.

Chains are configured in the file: a subscriber on ``order.placed`` with
``topic: order.follow_up`` and ``delay: 2d`` makes every order, two days
later, an ``order.follow_up`` event that other subscribers (a ``webhook``,
an app's handler) receive. The copy is a new event with the same data and
publisher headers, the handled event's correlation id, and its id as
causation id (:func:`hubbub.publish`), so a chain can be traced.

The copy's id is derived from the handled event's id, the subscriber and
the target topics (:func:`copy_id`), not drawn at random: delivery is at
least once, so a republish may run twice for one event (a retry after the
publish, a redelivery after a lost ack), and both runs then publish the
same id, which the next subscribers deduplicate by.

A subscriber must not republish to a topic its own patterns match: every
copy would come back to it, without end.
"""

from __future__ import annotations

import uuid
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


#: The namespace of :func:`copy_id`'s UUIDs (version 5).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "hubbub:republish")


def copy_id(event: envelope.Event, topics: tuple[str, ...]) -> str:
    """The id of ``event``'s copy under ``topics``: the same every time it is republished.

    UUID 5 of the event's id, the subscriber's name and the topics, one per
    line: two subscribers republishing one event (or one subscriber whose
    topics changed) make distinct copies.
    """
    name = "\n".join((event.id, event.subscriber or "", *topics))
    return str(uuid.uuid5(NAMESPACE, name))


def republish(event: envelope.Event, *, settings: RepublishSettings) -> None:
    """Publish ``event``'s data again under ``settings.topic`` (one event, all its topics),
    with the id :func:`copy_id` gives, whichever time it runs for the event."""
    topics = settings.topic
    current.publish(
        topics[0] if len(topics) == 1 else list(topics),
        event.data,
        headers=dict(event.headers) or None,
        message_id=copy_id(event, topics),
        delay=settings.delay,
    )
