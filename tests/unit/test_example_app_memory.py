"""The example app tested as an app would test itself: the plugin's ``memory_hub``
on the app's own topology file, no broker, three days in a millisecond."""

from __future__ import annotations

from pathlib import Path

import pytest

from example_app import actions, outbox
from example_app.demo import EVENTS

TOPOLOGY = Path(actions.__file__).with_name("topology.yaml")


@pytest.fixture
def hubbub_topology():
    """The plugin builds ``memory_hub`` from the app's real topology file."""
    return TOPOLOGY


@pytest.fixture
def app(memory_hub, monkeypatch, tmp_path):
    """The app's actions publish to the in-memory hub and write to a private outbox."""
    monkeypatch.setattr(actions, "_hub", memory_hub)
    monkeypatch.setenv("HUBBUB_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.delenv("HUBBUB_ACTIVITY_DB", raising=False)
    return memory_hub


def actions_done() -> dict[str, list[dict]]:
    done: dict[str, list[dict]] = {}
    for record in outbox.read():
        done.setdefault(record.pop("action"), []).append(record)
    return done


def test_the_seed_scenarios_each_trigger_their_action(app):
    ids = {topic: app.publish(topic, data) for topic, data in EVENTS}
    app.run_until_idle()

    done = actions_done()
    assert sorted(done) == ["audit-email", "notify-sales", "notify-support", "welcome-email"]
    assert done["welcome-email"] == [
        {"to": "alice@example.com", "subject": "Welcome, Alice!", "event_id": ids["user.signed_up"]}
    ]
    (audit,) = done["audit-email"]
    (sent,) = app.handled("audit-email")
    assert audit == {
        "to": "alice@example.com",
        "kind": "welcome",
        "caused_by": ids["user.signed_up"],
        "correlation": ids["user.signed_up"],
        "event_id": sent.id,
    }
    assert [r["what"] for r in done["notify-sales"]] == [
        "user.first_action.uploaded_photo",
        "billing.invoice.paid",
    ]
    assert done["notify-support"][0]["reason"] == "moved to a competitor"
    # the reminder gets each activity 3 days later (its delay: in the file), not yet
    assert app.handled("inactivity-reminder") == []
    assert [e.id for e in app.handled("track-activity")] == [
        ids["user.signed_up"],
        ids["user.first_action.uploaded_photo"],
    ]
    assert app.dead_lettered() == [] and app.unrouted() == []


def test_a_user_quiet_for_three_days_after_the_latest_activity_is_reminded_once(app):
    app.publish("user.signed_up", {"user_id": 7, "name": "Bo", "email": "bo@example.com"})
    app.advance(days=1)
    active = app.publish("user.active", {"user_id": 7})
    app.advance(days=2)  # the sign-up reaches the reminder: Bo was active since, no reminder
    assert [e.topic for e in app.handled("inactivity-reminder")] == ["user.signed_up"]
    assert "inactivity-reminder" not in actions_done()
    app.advance(hours=23, minutes=59)
    assert "inactivity-reminder" not in actions_done()  # not a minute early
    app.advance(minutes=1)  # three days after the latest activity
    (reminder,) = actions_done()["inactivity-reminder"]
    (seen,) = app.published("user.active")
    assert (reminder["to"], reminder["last_activity"], reminder["event_id"]) == (
        "bo@example.com",
        "user.active",
        active,
    )
    assert reminder["last_active"] == seen.timestamp.isoformat()
    app.advance(days=10)
    assert len(actions_done()["inactivity-reminder"]) == 1  # once


def test_the_reminder_takes_its_delay_from_the_file(tmp_path, monkeypatch):
    from hubbub.testing import InMemoryHub

    edited = tmp_path / "topology.yaml"
    edited.write_text(TOPOLOGY.read_text().replace("    delay: 3d", "    delay: 5d"))
    hub = InMemoryHub.from_file(edited)
    try:
        monkeypatch.setattr(actions, "_hub", hub)
        monkeypatch.setenv("HUBBUB_OUTBOX", str(tmp_path / "outbox.jsonl"))
        monkeypatch.delenv("HUBBUB_ACTIVITY_DB", raising=False)
        hub.publish("user.signed_up", {"user_id": 8, "email": "cy@example.com"})
        hub.advance(days=4, hours=23)
        assert "inactivity-reminder" not in actions_done()
        hub.advance(hours=1)
        assert [r["to"] for r in actions_done()["inactivity-reminder"]] == ["cy@example.com"]
    finally:
        hub.close()


def test_an_audit_of_an_email_without_recipient_is_dead_lettered_at_once(app):
    event_id = app.publish("email.sent", {"kind": "welcome"})
    app.run_until_idle()
    (dead,) = app.dead_lettered("audit-email")
    assert (dead.event.id, dead.reason, dead.exception, dead.attempts) == (
        event_id,
        "not retryable",
        "KeyError",
        1,
    )
    assert [a.outcome for a in app.attempts("audit-email")] == ["dead-letter"]
