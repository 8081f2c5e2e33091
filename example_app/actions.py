"""The example's actions: each is a plain function of one event.

They can be unit-tested by calling them with an ``Event``; under a consumer
they run on a handler thread, and ``hub.publish`` inside them carries the
event's correlation and causation ids.
"""

from __future__ import annotations

import os

from example_app import outbox
from hubbub import Event, Hub

_hub: Hub | None = None


def hub() -> Hub:
    """The hub actions publish follow-up events to (``HUBBUB_URL`` names the broker)."""
    global _hub
    if _hub is None:
        _hub = Hub(os.environ.get("HUBBUB_HUB", "events"))
    return _hub


def send_welcome_email(event: Event) -> None:
    """user.signed_up -> a welcome email, then raise ``email.sent``."""
    user = event.data
    outbox.write(
        "welcome-email", to=user["email"], subject=f"Welcome, {user['name']}!", event_id=event.id
    )
    hub().publish("email.sent", {"to": user["email"], "kind": "welcome"})


def notify_sales(event: Event) -> None:
    """user.first_action.* and billing.# -> tell sales what a customer did."""
    outbox.write(
        "notify-sales", user=event.data.get("user_id"), what=event.topic, event_id=event.id
    )


def notify_support(event: Event) -> None:
    """user.deleted -> tell customer support."""
    outbox.write(
        "notify-support",
        user=event.data.get("user_id"),
        reason=event.data.get("reason", "not given"),
        event_id=event.id,
    )


def audit_email(event: Event) -> None:
    """email.sent -> an audit line that shows which event caused it."""
    outbox.write(
        "audit-email",
        to=event.data["to"],
        kind=event.data["kind"],
        caused_by=event.causation_id,
        correlation=event.correlation_id,
        event_id=event.id,
    )
