"""Replay an edited copy of one parked event, losing neither the original nor the edit.

An operator fixes the data of an event that failed because of it (a typo in
an address, a field a new handler version needs) and sends the fixed copy
back. The same guarantee as :mod:`hubbub.admin.replay`: the original is
held unacked while its copy is published with confirms, and removed only
once the broker confirmed the copy. If the copy is refused, nacked or not
confirmed, the original stays parked exactly as it was and
:class:`EditError` says so.

The copy goes where a plain replay goes (the subscriber's queue only, or the
hub for an unrouted event), keeps the event's id, topic and properties, gets
the replay headers of :mod:`hubbub.admin.history` (attempts reset, failure
kept in the history, the entry marked ``"edited": true``) and the
:data:`EDITED` header, so the handler and later readers can tell it apart.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from hubbub import envelope
from hubbub.admin import history
from hubbub.admin.browse import Browser, HeldMessage
from hubbub.admin.records import FailedEvent
from hubbub.admin.replay import ReplayResult, Target, refused_publish
from hubbub.errors import BrokerConnectionError, ConfigurationError, HubbubError, PublishError
from hubbub.message import Message, Outbound
from hubbub.producers.publisher import Publisher
from hubbub.topology.permissions import Permissions

#: Header of a copy whose data an operator replaced: when (ms since the epoch).
EDITED = "hubbub-replay-edited"


class EditError(HubbubError):
    """The edited copy was not confirmed; the original is still parked."""


def encode(data: Any) -> bytes:
    """``data`` as the copy's JSON body; ConfigurationError for what JSON cannot carry.

    Strict: NaN and infinities are refused (JSON has no such values), as are
    types JSON has no form for.
    """
    try:
        text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"the edited data cannot be sent as JSON: {exc}") from exc
    return text.encode()


def parse(text: str, *, source: str) -> Any:
    """The data an operator wrote (JSON text from ``source``); one clear line if it is not."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError as exc:
        raise ConfigurationError(
            f"the edited data from {source} is not valid JSON: {exc} (nothing replayed)"
        ) from exc


def replay_edited(
    browser: Browser,
    publisher: Publisher,
    target: Target,
    event_id: str,
    body: bytes,
    *,
    subscriber: str | None,
    grant: Permissions | None = None,
) -> ReplayResult:
    """Replace parked event ``event_id`` by a copy carrying ``body``; see the module doc.

    ``grant``: the permissions to suggest if the broker refuses the copy.
    """
    message, event = _find(browser, subscriber, event_id)
    route = target.route(event)
    if isinstance(route, str):
        raise ConfigurationError(f"event {event_id} stays parked: {route} (nothing replayed)")
    result = ReplayResult(target.describe(), False, scanned=browser.seen, matched=1)
    exchange, key = route
    copy = edited_copy(message, event, subscriber, body, now_ms=int(time.time() * 1000))
    try:
        publisher.wait(publisher.send(Outbound(exchange, key, copy, mandatory=True)))
    except (PublishError, BrokerConnectionError) as exc:
        why = refused_publish(str(exc), target, grant) or exc
        raise EditError(
            f"the edited copy of event {event_id} was not confirmed ({why}): nothing "
            f"replayed, the original is still parked in {browser.queue!r}"
        ) from exc
    browser.ack(message)
    result.moved, result.ids = 1, [event_id]
    return result


def edited_copy(
    held: HeldMessage, event: FailedEvent, subscriber: str | None, body: bytes, *, now_ms: int
) -> Message:
    """The copy carrying ``body``: a replay's properties, JSON, the event's id kept, marked
    :data:`EDITED`."""
    if subscriber is None:
        copy = history.unrouted_message(held.message, event.topics)
    else:
        copy = history.replay_message(held.message, event, now_ms=now_ms, edited=True)
    return replace(
        copy,
        body=body,
        headers={**(copy.headers or {}), EDITED: now_ms},
        content_type=envelope.JSON,
        content_encoding=None,
        message_id=event.id,  # an id derived from the old body would change with it
    )


def _find(
    browser: Browser, subscriber: str | None, event_id: str
) -> tuple[HeldMessage, FailedEvent]:
    """The one parked message of ``event_id``; refuses none, and refuses several."""
    found: list[tuple[HeldMessage, FailedEvent]] = []
    for message, event in browser.events(subscriber):
        if event.id == event_id:
            found.append((message, event))
    if not found:
        raise ConfigurationError(
            f"no event {event_id} in {browser.queue!r} (replayed or purged meanwhile?): "
            "nothing replayed"
        )
    if len(found) > 1:
        raise ConfigurationError(
            f"{len(found)} events in {browser.queue!r} have id {event_id}: edit cannot tell "
            "them apart (purge the duplicates first); nothing replayed"
        )
    return found[0]
