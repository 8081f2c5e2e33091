"""topology plan / apply against the real broker: idempotence, stale bindings, conflicts."""

from __future__ import annotations

import pika
import pika.exceptions as pe
import pytest
import yaml
from click.testing import CliRunner
from core_support import Recorder, channel, hubbub, take_all

from hubbub.cli.main import cli
from hubbub.errors import DeclarationError
from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub
from hubbub.topology import apply, delay, layout, loader, make_plan
from hubbub.topology.patterns import matches

pytestmark = pytest.mark.integration


def spec(hub: str, *topics: str) -> dict:
    return {"hub": hub, "subscribers": {"s": {"handler": "json:dumps", "topics": list(topics)}}}


@pytest.fixture
def cleanup(broker_url):
    """Delete, after the test, every hub the test names (whatever state it left)."""
    hubs: list[str] = []
    yield hubs.append
    for hub in hubs:
        delete_hub(broker_url, loader.from_mapping(spec(hub, "x")))


def test_plan_shows_creates_on_an_empty_broker_and_apply_is_idempotent(
    broker_url, hub_name, cleanup
):
    topology = loader.from_mapping(spec(hub_name, "user.*", "billing.#"))
    cleanup(hub_name)
    wanted = layout(topology)
    first = make_plan(topology, [broker_url])
    assert {c.action for c in first.changes} == {"create"}
    assert len(first.changes) == len(wanted.exchanges) + len(wanted.queues) + len(wanted.bindings)

    assert apply(topology, [broker_url]) == first
    after = make_plan(topology, [broker_url])
    assert after.changes == ()
    applied_again = apply(topology, [broker_url])
    assert applied_again is not None and applied_again.changes == ()
    assert make_plan(topology, [broker_url]).changes == ()


def test_a_pattern_removed_from_the_file_is_unbound_and_stops_arriving(
    broker_url, hub_name, declare, run_worker, tmp_path
):
    declare(spec(hub_name, "a.x", "b.x"))
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(spec(hub_name, "a.x")))
    runner = CliRunner()

    planned = runner.invoke(cli, ["topology", "plan", "--file", str(path), "--url", broker_url])
    assert planned.exit_code == 0, planned.output
    queue = f"{hub_name}.s"
    stale_hub = f"- remove binding {hub_name} -> queue {queue} [b.x]: no longer in the topology"
    stale_delayed = (
        f"- remove binding hubbub.v1.{hub_name}.delivery -> queue {queue} "
        f"[{delay.delivery_event_pattern('b.x')}]: no longer in the topology"
    )
    meaning, broker = planned.stdout.split("On the broker:\n")
    assert "  - s will no longer receive b.x\n" in meaning
    assert sorted(broker.splitlines()) == sorted([stale_hub, stale_delayed])

    applied = runner.invoke(cli, ["topology", "apply", "--file", str(path), "--url", broker_url])
    assert applied.exit_code == 0, applied.output
    told, broker = applied.stdout.split("On the broker:\n")
    assert told == meaning
    *removed, summary = broker.splitlines()
    assert sorted(removed) == sorted([stale_hub, stale_delayed])
    assert summary == f"applied hub {hub_name!r}: 2 change(s)"
    assert make_plan(loader.load(path), [broker_url]).changes == ()

    got = Recorder()
    run_worker(loader.load(path), {"s": got})
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("b.x", {"n": 1})  # first: were it still bound, it would arrive first
        publisher.publish("a.x", {"n": 2})
    assert [e.topic for e in got.wait_for(1)] == ["a.x"]
    parked = take_all(broker_url, f"{hub_name}.unrouted")
    assert [m.routing_key for m, _, _ in parked] == ["b.x"]
    assert [e.topic for e in got.events] == ["a.x"]


def test_a_queue_with_conflicting_arguments_is_reported_by_plan_and_apply(
    broker_url, hub_name, cleanup, tmp_path
):
    cleanup(hub_name)
    queue = f"{hub_name}.s"
    with channel(broker_url) as ch:
        ch.queue_declare(queue, durable=True)  # a classic queue where a quorum queue belongs
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(spec(hub_name, "a.x")))

    plan = make_plan(loader.load(path), [broker_url])
    (conflict,) = plan.conflicts
    assert (conflict.kind, conflict.name) == ("queue", queue)
    assert "argument x-queue-type is 'classic' on the broker, the topology needs 'quorum'" in (
        conflict.detail
    )

    planned = CliRunner().invoke(cli, ["topology", "plan", "-f", str(path), "--url", broker_url])
    assert planned.exit_code == 1
    assert f"! conflict queue {queue}: argument x-dead-letter-exchange is not set" in planned.stdout

    result = hubbub("topology", "apply", "--file", str(path), url=broker_url)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: cannot apply hub '{hub_name}': queue '{queue}': argument ")
    assert "x-queue-type is 'classic' on the broker, the topology needs 'quorum'" in line
    assert f"drain it, delete it (rabbitmqctl delete_queue {queue}) and apply again" in line
    with channel(broker_url) as ch, pytest.raises(pe.ChannelClosedByBroker):
        ch.exchange_declare(hub_name, passive=True)  # refused before declaring anything


def test_without_the_management_api_apply_explains_the_brokers_refusal(
    broker_url, hub_name, cleanup, monkeypatch
):
    cleanup(hub_name)
    with channel(broker_url) as ch:
        ch.queue_declare(f"{hub_name}.s", durable=True)
    monkeypatch.setenv("HUBBUB_MANAGEMENT_URL", "http://127.0.0.1:1")
    with pytest.raises(DeclarationError) as info:
        apply(loader.from_mapping(spec(hub_name, "a.x")), [broker_url])
    message = str(info.value)
    assert message.startswith(f"queue '{hub_name}.s' already exists with ")
    assert "RabbitMQ cannot change it in place" in message
    assert "PRECONDITION_FAILED" not in message


PATTERNS = ["#", "*", "a.#", "a.*", "#.c", "a.#.c", "a.*.c", "*.#", "#.#", "a.b.c", "*.*"]
KEYS = ["", "a", "a.b", "a.c", "a.b.c", "a.b.b.c", "c", "b.c", "a.", ".", "a.b.c.d"]


def test_matches_routes_exactly_as_the_broker_does(broker_url, hub_name):
    """The pure matcher (used by the in-memory hub and warnings) against a real topic exchange."""
    with channel(broker_url) as ch:
        ch.exchange_declare(hub_name, "topic", auto_delete=True)
        queues = {}
        for pattern in PATTERNS:
            queues[pattern] = ch.queue_declare("", exclusive=True).method.queue
            ch.queue_bind(queues[pattern], hub_name, pattern)
        ch.confirm_delivery()
        for key in KEYS:
            ch.basic_publish(hub_name, key, key.encode(), pika.BasicProperties())
        for pattern, queue in queues.items():
            routed = set()
            while (got := ch.basic_get(queue, auto_ack=True))[0] is not None:
                routed.add(got[2].decode())
            assert routed == {k for k in KEYS if matches(pattern, k)}, pattern
        ch.exchange_delete(hub_name)
