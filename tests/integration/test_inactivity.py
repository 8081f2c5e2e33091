"""The example app's inactivity scenario end to end (issue 3), its delay from the file.

The app's topology.yaml with ``inactivity-reminder``'s ``delay: 3d`` made
``2s``, as a person would edit it. Runtime about 5 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from ladder_support import Arrivals

from example_app import actions, inactivity, outbox
from hubbub.producers import Publisher
from hubbub.topology.loader import resolve_handler

pytestmark = pytest.mark.integration

EXAMPLE = Path(actions.__file__).with_name("topology.yaml")
SUBSCRIBERS = ["track-activity", "inactivity-reminder"]


@pytest.fixture
def app_env(monkeypatch, tmp_path, hub_name):
    """The example's actions publish to this test's hub and write to a private outbox."""
    monkeypatch.setenv("HUBBUB_HUB", hub_name)
    monkeypatch.setenv("HUBBUB_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.setattr(actions, "_hub", None)
    yield
    if actions._hub is not None:
        actions._hub.close()


def test_a_user_quiet_after_an_activity_is_reminded_once_for_the_latest_one(
    app_env, declare, run_worker, hub_name, broker_url
):
    spec = yaml.safe_load(EXAMPLE.read_text().replace("    delay: 3d", "    delay: 2s"))
    topology = declare({**spec, "hub": hub_name})
    assert topology.subscriber("inactivity-reminder").delay == 2
    checks = Arrivals()
    remind = resolve_handler(topology.subscriber("inactivity-reminder").handler)

    def counted_remind(event):
        remind(event)
        checks(event)

    handlers = {
        "track-activity": resolve_handler(topology.subscriber("track-activity").handler),
        "inactivity-reminder": counted_remind,
    }
    run_worker(topology, handlers, subscribers=SUBSCRIBERS)
    with Publisher(hub_name, url=broker_url) as publisher:
        signed_up = publisher.publish("user.signed_up", {"user_id": 1, "email": "ann@example.com"})
        active = publisher.publish("user.active", {"user_id": 1})
        publisher.publish("user.signed_up", {"user_id": 2, "email": "bob@example.com"})
        published = time.time()

        fired = checks.wait_for(3, timeout=2 + 4)  # each activity, 2 s after it
        assert all(at - published >= 2 - 0.1 for at, _ in fired)  # none early
        reminders = [r for r in outbox.read() if r["action"] == "inactivity-reminder"]
        assert sorted((r["user"], r["to"], r["last_activity"]) for r in reminders) == [
            (1, "ann@example.com", "user.active"),
            (2, "bob@example.com", "user.signed_up"),
        ]
        # the same events, as if undelayed: their own topics, attempt 1
        topics = sorted(e.topic for _, e in fired)
        assert topics == ["user.active", "user.signed_up", "user.signed_up"]
        assert all(e.attempt == 1 and e.delay is None for _, e in fired)
        assert {e.id for _, e in fired} >= {signed_up, active}

        # An activity delivered again (at least once) does not remind twice.
        again = next(e for _, e in fired if e.data["user_id"] == 2)
        publisher.publish("user.signed_up", again.data, message_id=again.id)
        checks.wait_for(4, timeout=2 + 3)
    assert len([r for r in outbox.read() if r["action"] == "inactivity-reminder"]) == 2
    assert inactivity.latest("1") == {"last_topic": "user.active", "reminded": True}
