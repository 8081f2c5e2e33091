"""The example app's seed scenarios end to end, as ``make demo`` runs them (issue 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from core_support import depth, wait_until

from example_app import actions, outbox
from example_app.demo import EVENTS
from hubbub.producers import Publisher
from hubbub.topology.loader import resolve_handler

pytestmark = pytest.mark.integration

EXAMPLE = Path(actions.__file__).with_name("topology.yaml")
SEED = ["welcome-email", "notify-sales", "notify-support", "audit-email"]


@pytest.fixture
def app_env(monkeypatch, tmp_path, hub_name):
    """The example's actions publish to this test's hub and write to a private outbox."""
    monkeypatch.setenv("HUBBUB_HUB", hub_name)
    monkeypatch.setenv("HUBBUB_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.setattr(actions, "_hub", None)
    yield
    if actions._hub is not None:
        actions._hub.close()


def test_the_seed_scenarios_each_trigger_their_action(
    app_env, declare, run_worker, hub_name, broker_url
):
    spec = yaml.safe_load(EXAMPLE.read_text())
    topology = declare({**spec, "hub": hub_name})
    handlers = {name: resolve_handler(topology.subscriber(name).handler) for name in SEED}
    run_worker(topology, handlers, subscribers=SEED)

    with Publisher(hub_name, url=broker_url) as publisher:
        ids = {topic: publisher.publish(topic, data) for topic, data in EVENTS}
    wait_until(lambda: len(outbox.read()) >= 5, 15, "the five actions happened")
    for name in SEED:  # every event is handled and acked, none dead-lettered
        wait_until(lambda n=name: depth(broker_url, f"{hub_name}.{n}") == 0, 5, f"{name} is done")
        assert depth(broker_url, f"{hub_name}.{name}.dlq") == 0

    done = {}
    for record in outbox.read():
        done.setdefault(record.pop("action"), []).append(record)
    assert sorted(done) == sorted(SEED)

    (welcome,) = done["welcome-email"]
    assert welcome == {
        "to": "alice@example.com",
        "subject": "Welcome, Alice!",
        "event_id": ids["user.signed_up"],
    }
    assert sorted((r["what"], r["user"]) for r in done["notify-sales"]) == [
        ("billing.invoice.paid", 1),
        ("user.first_action.uploaded_photo", 1),
    ]
    (support,) = done["notify-support"]
    assert (support["user"], support["reason"]) == (2, "moved to a competitor")
    assert support["event_id"] == ids["user.deleted"]

    # The welcome email raised email.sent; its audit line names the welcome email's event
    # as the cause, and the whole chain shares the signup's correlation id.
    (audit,) = done["audit-email"]
    assert (audit["to"], audit["kind"]) == ("alice@example.com", "welcome")
    assert audit["caused_by"] == welcome["event_id"]
    assert audit["correlation"] == ids["user.signed_up"]
    assert audit["event_id"] not in ids.values()
