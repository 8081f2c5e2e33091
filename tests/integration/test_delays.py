"""Delayed delivery through the broker's TTL ladder (issue 3).

Delays are short (1-5 s) and run in parallel inside a test. Runtime about 20 s.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from ladder_support import (
    Arrivals,
    consumers,
    depth,
    ladder_depth,
    subscribers,
    take,
    wait_until,
)

from hubbub import envelope
from hubbub.cli.main import cli
from hubbub.errors import DelayTooLongError
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.topology import delay
from hubbub.topology.names import HubNames

pytestmark = pytest.mark.integration

#: The issue's bound: a delayed event arrives within this long after it is due.
ON_TIME = 1.0


def test_delays_of_1_to_5_s_arrive_not_before_and_within_1_s_after_due(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(subscribers(hub_name, reminders={"topics": ["user.*"]}))
    arrivals = Arrivals()
    run_worker(topology, {"reminders": arrivals})
    delays = {1: 1, 2: timedelta(seconds=2), 3: "3s", 4: 4, 5: "4.2s"}  # 4.2 s rounds up to 5
    with Publisher(hub_name, url=broker_url) as publisher:
        sent = datetime.now(timezone.utc)
        ids = publisher.publish_many(
            OutgoingEvent("user.inactive", {"n": n}, headers={"tenant": "acme"}, delay=d)
            for n, d in delays.items()
        )
        confirmed = datetime.now(timezone.utc)
        at = confirmed + timedelta(seconds=2.5)
        at_id = publisher.publish("user.inactive", {"n": "at"}, deliver_at=at)

    got = arrivals.wait_for(len(delays) + 1, timeout=5 + 2 * ON_TIME)

    by_id = {e.id: (arrived, e) for arrived, e in got}
    assert set(by_id) == {*ids, at_id}
    for event_id, n in zip(ids, delays, strict=True):
        arrived, event = by_id[event_id]
        assert sent.timestamp() + n <= arrived <= confirmed.timestamp() + n + ON_TIME, n
        assert (event.topic, event.data, event.headers) == (
            "user.inactive",
            {"n": n},
            {"tenant": "acme"},
        )
        assert (event.delay, event.attempt) == (n, 1)
        due_ms = timedelta(milliseconds=1)  # the header holds epoch milliseconds
        assert sent + timedelta(seconds=n) - due_ms <= event.due <= confirmed + timedelta(seconds=n)
    arrived, event = by_id[at_id]
    assert at.timestamp() <= arrived <= at.timestamp() + 1 + ON_TIME  # whole seconds, rounded up
    assert ladder_depth(broker_url, hub_name) == 0


def test_a_deliver_at_in_the_past_delivers_now(declare, run_worker, hub_name, broker_url):
    topology = declare(subscribers(hub_name, reminders={"topics": ["user.*"]}))
    arrivals = Arrivals()
    run_worker(topology, {"reminders": arrivals})
    with Publisher(hub_name, url=broker_url) as publisher:
        past = datetime.now(timezone.utc) - timedelta(hours=1)
        event_id = publisher.publish("user.inactive", {"late": True}, deliver_at=past)
    [(_, event)] = arrivals.wait_for(1, timeout=ON_TIME)
    assert (event.id, event.topic, event.data, event.delay) == (
        event_id,
        "user.inactive",
        {"late": True},
        0,
    )


def test_a_consumer_restart_while_events_wait_loses_nothing(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(subscribers(hub_name, reminders={"topics": ["user.*"]}))
    first = run_worker(topology, {"reminders": Arrivals()})
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = publisher.publish_many(
            OutgoingEvent("user.inactive", {"n": n}, delay=3 + n % 2) for n in range(6)
        )
    first.stop()
    queue = HubNames(hub_name).queue("reminders")
    wait_until(lambda: consumers(broker_url, queue) == 0, 5, "the first consumer is gone")
    assert ladder_depth(broker_url, hub_name) == 6, "the events wait in the broker, not the worker"

    arrivals = Arrivals()
    run_worker(topology, {"reminders": arrivals})
    got = arrivals.wait_for(6, timeout=4 + ON_TIME + 2)
    assert {e.id for _, e in got} == set(ids)


def test_a_subscriber_bound_while_the_event_waits_receives_it(declare, hub_name, broker_url):
    before = declare(subscribers(hub_name, early={"topics": ["user.signed_up"]}))
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("order.placed", {"order": 9}, delay=3)
    names = before.names
    declare(
        subscribers(hub_name, early={"topics": ["user.signed_up"]}, late={"topics": ["order.*"]})
    )
    assert ladder_depth(broker_url, hub_name) == 1, "bound while the event still waits"
    wait_until(lambda: depth(broker_url, names.queue("late")) == 1, 3 + 3, "it reaches late")
    props, body = take(broker_url, names.queue("late"))
    assert (props.message_id, props.headers[envelope.TOPIC], body) == (
        event_id,
        "order.placed",
        b'{"order":9}',
    )
    assert depth(broker_url, names.queue("early"), names.unrouted) == 0


def test_a_delayed_event_nobody_matches_is_parked_in_unrouted(declare, hub_name, broker_url):
    topology = declare(subscribers(hub_name, early={"topics": ["user.signed_up"]}))
    with Publisher(hub_name, url=broker_url) as publisher:
        event_id = publisher.publish("nobody.cares", {"x": 1}, delay=1)
    unrouted = topology.names.unrouted
    wait_until(lambda: depth(broker_url, unrouted) == 1, 1 + 3, "it is parked in unrouted")
    assert ladder_depth(broker_url, hub_name) == 0
    props, body = take(broker_url, unrouted)
    assert (props.message_id, props.headers[envelope.TOPIC], body) == (
        event_id,
        "nobody.cares",
        b'{"x":1}',
    )


def test_the_cli_rounds_delays_up_to_whole_seconds(declare, run_worker, hub_name, broker_url):
    topology = declare(subscribers(hub_name, reminders={"topics": ["user.*"]}))
    arrivals = Arrivals()
    run_worker(topology, {"reminders": arrivals})
    args = ["publish", "--hub", hub_name, "--url", broker_url, "user.idle", '{"a": 1}']
    before = time.time()
    result = CliRunner().invoke(cli, [*args, "--delay", "1500ms"])
    assert result.exit_code == 0, result.output
    assert "delivered in 2 s" in result.output
    [(arrived, event)] = arrivals.wait_for(1, timeout=2 + ON_TIME + 1)
    assert arrived >= before + 2
    assert (event.topic, event.data, event.delay) == ("user.idle", {"a": 1}, 2)


def test_delays_past_the_maximum_are_refused_clearly_and_publish_nothing(
    declare, hub_name, broker_url
):
    topology = declare(subscribers(hub_name, reminders={"topics": ["user.*"]}))
    with Publisher(hub_name, url=broker_url) as publisher:
        with pytest.raises(DelayTooLongError, match=rf"can hold \({delay.MAX_DELAY_SECONDS} s"):
            publisher.publish("user.inactive", {}, delay=delay.MAX_DELAY_SECONDS + 1)
        with pytest.raises(DelayTooLongError):
            publisher.publish(
                "user.inactive", {}, deliver_at=datetime.now(timezone.utc) + timedelta(days=3200)
            )
        publisher.publish("user.inactive", {}, delay=delay.MAX_DELAY_SECONDS)  # the longest is fine

    cli_run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubbub.cli.main",
            "publish",
            "--hub",
            hub_name,
            "--url",
            broker_url,
            "user.inactive",
            "{}",
            "--delay",
            "3107d",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli_run.returncode == 1
    assert cli_run.stdout == ""
    [line] = cli_run.stderr.splitlines()
    assert line.startswith("error: a delay of 268444800 s exceeds the longest")
    assert "Traceback" not in cli_run.stderr
    assert ladder_depth(broker_url, hub_name) == 1  # only the accepted one waits
    assert depth(broker_url, topology.names.queue("reminders"), topology.names.unrouted) == 0
