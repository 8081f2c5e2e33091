"""The web example's handlers: ``async def`` functions of one event.

They run as tasks on an event loop (the web app's own, under ``async with
hub.running()`` in its lifespan, or the one ``hubbub consume`` starts), so
while one awaits its mail server the others go on: a subscriber's
``concurrency`` is how many events are in flight at once.

What they "send" is kept in memory (:data:`MAILBOX`), which ``GET /sent``
shows: the consumer runs inside the web process.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import hubbub
from hubbub import Event

#: What the handlers did, newest last: ``{"emails": [...], "audit": [...]}``.
MAILBOX: dict[str, list[dict[str, Any]]] = {"emails": [], "audit": []}


def mail_latency() -> float:
    """Seconds a simulated send takes (``EXAMPLE_MAIL_LATENCY``, default 0.05)."""
    return float(os.environ.get("EXAMPLE_MAIL_LATENCY", "0.05"))


async def send_welcome_email(event: Event) -> None:
    """user.signed_up -> a welcome email, then raise ``email.sent``.

    The send awaits (a real mailer would be an async SMTP or HTTP client);
    ``hubbub.apublish`` goes through the consumer that delivered the event,
    with its correlation id and the event's id as causation id.
    """
    user = event.data
    await asyncio.sleep(mail_latency())
    MAILBOX["emails"].append(
        {"to": user["email"], "subject": f"Welcome, {user['name']}!", "event_id": event.id}
    )
    await hubbub.apublish("email.sent", {"to": user["email"], "kind": "welcome"})


async def audit_email(event: Event) -> None:
    """email.sent -> an audit line that shows which event caused it."""
    MAILBOX["audit"].append(
        {
            "to": event.data["to"],
            "kind": event.data["kind"],
            "caused_by": event.causation_id,
            "event_id": event.id,
        }
    )


def clear() -> None:
    """Empty the mailbox (tests)."""
    for sent in MAILBOX.values():
        sent.clear()
