"""The seed's inactivity scenario: remind users who went quiet.

Each user activity (``user.signed_up``, ``user.active``,
``user.first_action.*``) reaches two subscribers. ``track-activity`` gets it
at once and records it as that user's latest. ``inactivity-reminder`` gets
the same event X days later, X being its ``delay:`` in topology.yaml (3d; the
demo writes a copy with 2s): the event waits in a queue of the broker's own,
so no process has to stay up, and a restart loses nothing. The user is
reminded only if that event is still their latest activity; a newer one
reaches the reminder X days after itself.

State lives in a small SQLite file next to the outbox (``HUBBUB_ACTIVITY_DB``
overrides it): SQLite's locking makes it safe for several consumer processes
and handler threads. A check delivered twice (delivery is at least once)
reminds once: the reminder is claimed with one conditional UPDATE.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from example_app import outbox
from hubbub import Event

log = logging.getLogger("example_app.inactivity")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS activity (
    user_id       TEXT PRIMARY KEY,
    last_event    TEXT NOT NULL,   -- id of the user's latest activity event
    last_topic    TEXT NOT NULL,
    email         TEXT,
    reminded_for  TEXT             -- the activity event id a reminder was sent for
)
"""


def db_path() -> Path:
    explicit = os.environ.get("HUBBUB_ACTIVITY_DB")
    return Path(explicit) if explicit else outbox.path().with_suffix(".activity.sqlite3")


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as conn:
        conn.execute(_SCHEMA)
        yield conn


def record_activity(user_id: str, event_id: str, topic: str, email: str | None) -> None:
    """Make ``event_id`` the user's latest activity (remembering their email once known)."""
    with _db() as conn:
        conn.execute(
            "INSERT INTO activity (user_id, last_event, last_topic, email) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET last_event = excluded.last_event, "
            "last_topic = excluded.last_topic, email = COALESCE(excluded.email, email)",
            (user_id, event_id, topic, email),
        )


def claim_reminder(user_id: str, event_id: str) -> dict[str, Any] | None:
    """The user's record if ``event_id`` is still their latest activity and not yet reminded.

    Claiming marks it reminded, so only one of several deliveries of a check wins.
    """
    with _db() as conn:
        claimed = conn.execute(
            "UPDATE activity SET reminded_for = last_event WHERE user_id = ? AND last_event = ? "
            "AND (reminded_for IS NULL OR reminded_for != last_event)",
            (user_id, event_id),
        ).rowcount
        if claimed != 1:
            return None
        row = conn.execute(
            "SELECT last_topic, email FROM activity WHERE user_id = ?", (user_id,)
        ).fetchone()
    return {"last_topic": row[0], "email": row[1]}


def latest(user_id: str) -> dict[str, Any] | None:
    """What is known of a user (for the demo's summary)."""
    with _db() as conn:
        row = conn.execute(
            "SELECT last_topic, reminded_for = last_event FROM activity WHERE user_id = ?",
            (user_id,),
        ).fetchone()
    return None if row is None else {"last_topic": row[0], "reminded": bool(row[1])}


def _user(event: Event) -> str | None:
    user_id = event.data.get("user_id") if isinstance(event.data, dict) else None
    if user_id is None:
        log.warning("activity %s (%s) names no user_id; ignored", event.id, event.topic)
    return None if user_id is None else str(user_id)


def track_activity(event: Event) -> None:
    """A user did something: remember it as their latest activity."""
    user_id = _user(event)
    if user_id is not None:
        record_activity(user_id, event.id, event.topic, event.data.get("email"))


def remind_inactive(event: Event) -> None:
    """An activity, its ``delay:`` later: remind the user unless they were active since."""
    user_id = _user(event)
    if user_id is None:
        return
    claimed = claim_reminder(user_id, event.id)
    if claimed is None:
        log.info("user %s was active after %s (or was reminded): no reminder", user_id, event.id)
        return
    outbox.write(
        "inactivity-reminder",
        user=event.data["user_id"],
        to=claimed["email"],
        last_activity=claimed["last_topic"],
        last_active=event.timestamp.isoformat() if event.timestamp else None,
        event_id=event.id,
    )
