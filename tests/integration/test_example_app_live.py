"""The example app's seed scenarios on the plugin's ``hubbub_live_hub``: the app's own
topology file, a real broker, a vhost of the test's own (the twin of
tests/unit/test_example_app_memory.py, which runs them in memory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from example_app import actions, outbox
from example_app.demo import EVENTS

pytestmark = pytest.mark.integration

TOPOLOGY = Path(actions.__file__).with_name("topology.yaml")


@pytest.fixture
def hubbub_topology():
    return TOPOLOGY


def test_the_seed_scenarios_each_trigger_their_action(hubbub_live_hub, monkeypatch, tmp_path):
    hub = hubbub_live_hub
    monkeypatch.setattr(actions, "_hub", hub)
    monkeypatch.setenv("HUBBUB_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.delenv("HUBBUB_ACTIVITY_DB", raising=False)  # next to the private outbox
    ids = {topic: hub.publish(topic, data) for topic, data in EVENTS}
    hub.run_until_idle()

    done: dict[str, list[dict]] = {}
    for record in outbox.read():
        done.setdefault(record.pop("action"), []).append(record)
    assert sorted(done) == ["audit-email", "notify-sales", "notify-support", "welcome-email"]
    (audit,) = done["audit-email"]
    assert (audit["caused_by"], audit["correlation"]) == (ids["user.signed_up"],) * 2
    assert sorted(r["what"] for r in done["notify-sales"]) == [
        "billing.invoice.paid",
        "user.first_action.uploaded_photo",
    ]
    assert sorted(e.id for e in hub.handled("track-activity")) == sorted(
        [ids["user.signed_up"], ids["user.first_action.uploaded_photo"]]
    )
    assert hub.handled("inactivity-reminder") == []  # they wait 3 days, in its wait queue
    assert hub.dead_lettered() == [] and hub.unrouted() == []
