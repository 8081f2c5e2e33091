"""Actions without code on the real broker: a topology file with a ``webhook`` and a
``republish`` subscriber, no Python handler at all, runs under ``hubbub consume`` and a
local HTTP server receives the events, signed (a 500 retried through the broker's ladder)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest
import yaml
from core_support import consuming, hubbub, terminate

from hubbub.actions import republish, signing
from hubbub.actions.republishing import RepublishSettings
from hubbub.producers import Publisher
from tests.support.receiver import Answer, receiving

pytestmark = pytest.mark.integration

SECRET = "integration-secret-0123"


@dataclass
class Welcome:
    template: str


def spec(hub: str, url: str) -> dict[str, object]:
    return {
        "hub": hub,
        "subscribers": {
            "notify-crm": {
                "handler": "webhook",
                "topics": ["order.placed", "order.follow_up"],
                "retry": {"attempts": 3, "backoff": "1s", "jitter": False},
                "settings": {"url": url, "timeout": "5s", "secret_env": "CRM_SECRET"},
            },
            "follow-up": {
                "handler": "republish",
                "topics": ["order.placed"],
                "settings": {"topic": "order.follow_up", "delay": "1s"},
            },
        },
    }


def test_a_file_alone_posts_signed_events_and_chains_a_republish(
    declare, hub_name, broker_url, tmp_path
):
    with receiving(Answer(500, body=b"try again")) as receiver:
        declare(spec(hub_name, receiver.url))
        topology = tmp_path / "topology.yaml"
        topology.write_text(yaml.safe_dump(spec(hub_name, receiver.url)))
        with consuming(
            "-f", str(topology), url=broker_url, cwd=tmp_path, CRM_SECRET=SECRET,
            HUBBUB_LOG_LEVEL="DEBUG",
        ) as process:  # fmt: skip
            with Publisher(hub_name, url=broker_url) as publisher:
                placed = publisher.publish("order.placed", {"order": 42})
            requests = receiver.wait_for(3, timeout=30)
            stderr = terminate(process)
    assert process.returncode == 0, stderr
    assert SECRET not in stderr

    bodies = [orjson.loads(r.body) for r in requests]
    for request in requests:  # every request verifies with the shared secret
        signing.verify(SECRET, request.body, request.headers[signing.HEADER])
    by_topic = sorted((b["topic"], b["attempt"]) for b in bodies)
    assert by_topic == [("order.follow_up", 1), ("order.placed", 1), ("order.placed", 2)]
    assert {b["id"] for b in bodies if b["topic"] == "order.placed"} == {placed}
    [follow_up] = [b for b in bodies if b["topic"] == "order.follow_up"]
    assert follow_up["data"] == {"order": 42} and follow_up["causation_id"] == placed


def test_a_missing_secret_warns_in_validate_and_stops_consume_in_one_line(
    hub_name, broker_url, tmp_path
):
    """The secret is set where the subscriber runs, not in CI: validate passes with a
    warning, consume (against the real broker) refuses to start."""
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump(spec(hub_name, "http://127.0.0.1:9/hook")))
    where = "subscribers.notify-crm.settings.secret_env: environment variable CRM_SECRET"
    result = hubbub("topology", "validate", "-f", str(topology), CRM_SECRET="")
    assert result.returncode == 0, result.stderr
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith("warning: ") and where in warning
    consume = hubbub("consume", "-f", str(topology), url=broker_url, timeout=30, CRM_SECRET="")
    assert consume.returncode == 1
    assert where in consume.stderr and "Traceback" not in consume.stderr
    good = hubbub("topology", "validate", "-f", str(topology), CRM_SECRET=SECRET)
    assert good.returncode == 0 and good.stderr == "", good.stderr


def test_the_live_hub_gives_handlers_their_settings_and_runs_republish(hubbub_live_hub):
    hub = hubbub_live_hub
    got = []

    @hub.subscriber("again", topics=["user.signed_up"], settings={"topic": "user.welcome"})
    def again(event, *, settings: RepublishSettings):
        republish(event, settings=settings)

    @hub.subscriber("welcome", topics=["user.welcome"], settings={"template": "w1"})
    def welcome(event, *, settings: Welcome):
        got.append((event.data, settings.template))

    first = hub.publish("user.signed_up", {"user": 1})
    hub.run_until_idle()
    assert got == [({"user": 1}, "w1")]
    assert [e.causation_id for e in hub.handled("welcome")] == [first]
