"""Replaying parked events of several topics to the hub: once a subscriber for ANY of its
topics exists, a parked event (delayed or not) reaches every subscriber its topics match."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from dlq_support import ids_in

from hubbub.admin import Admin, select
from hubbub.cli.main import cli
from hubbub.producers import Publisher

pytestmark = pytest.mark.integration


def run(*args: str):
    return CliRunner().invoke(cli, ["--log-level", "WARNING", *args])


def spec(hub: str, **subs: list[str]) -> dict:
    return {
        "hub": hub,
        "subscribers": {name: {"handler": "x:y", "topics": t} for name, t in subs.items()},
    }


def test_an_unrouted_event_replays_when_only_its_second_topic_has_a_subscriber(
    declare, hub_name, broker_url
):
    topology = declare(spec(hub_name, billing=["billing.#"]))
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish(["user.signed_up", "marketing.lead"], {"n": 1})
    assert ids_in(broker_url, topology.names.unrouted) == [event_id]

    grown = declare(spec(hub_name, billing=["billing.#"], marketing=["marketing.lead"]))
    replayed = run("dlq", "replay", "unrouted", "--hub", hub_name, "--all")

    assert replayed.exit_code == 0, replayed.output
    assert ids_in(broker_url, grown.names.queue("marketing")) == [event_id]
    assert ids_in(broker_url, grown.names.unrouted) == []


def test_a_replayed_unrouted_delayed_event_reaches_the_subscribers_of_every_topic(
    declare, hub_name, broker_url
):
    topology = declare(spec(hub_name, billing=["billing.#"]))
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish(["user.signed_up", "marketing.lead"], {"n": 2}, delay=1)
    deadline = time.monotonic() + 10
    while ids_in(broker_url, topology.names.unrouted) != [event_id]:
        assert time.monotonic() < deadline, "the delayed event was never parked"
        time.sleep(0.2)

    grown = declare(
        spec(hub_name, billing=["billing.#"], users=["user.#"], marketing=["marketing.lead"])
    )
    assert Admin(grown, url=broker_url).replay("unrouted", select()).moved == 1

    assert ids_in(broker_url, grown.names.queue("users")) == [event_id]
    # Its copy lists marketing.lead in CC as a topic, not as the ladder key it was parked with.
    assert ids_in(broker_url, grown.names.queue("marketing")) == [event_id]
