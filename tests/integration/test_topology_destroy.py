"""``topology plan --detailed-exitcode``, apply's summary and ``topology destroy`` (real broker)."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from core_support import channel

from hubbub.cli.main import cli
from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub
from hubbub.topology import loader, make_plan
from hubbub.topology.sync import make_teardown

pytestmark = pytest.mark.integration


def spec(hub: str, *subscribers: str) -> dict:
    subs = {s: {"handler": "json:dumps", "topics": [f"{s}.#"]} for s in subscribers}
    return {"hub": hub, "subscribers": subs}


@pytest.fixture
def topology_file(tmp_path, hub_name, broker_url):
    """Write the hub's topology file (call again to change it); the hub is deleted after."""
    path = tmp_path / "topology.yaml"

    def write(*subscribers: str):
        path.write_text(yaml.safe_dump(spec(hub_name, *subscribers)))
        return path

    yield write
    delete_hub(broker_url, loader.from_mapping(spec(hub_name, "a", "b")))


def topology(command: str, path, broker_url, *args: str, answer: str | None = None):
    return CliRunner().invoke(
        cli, ["topology", command, "--file", str(path), "--url", broker_url, *args], input=answer
    )


def exists(url: str, queue: str) -> bool:
    import pika.exceptions as pe

    try:
        with channel(url) as ch:
            ch.queue_declare(queue, passive=True)
    except pe.ChannelClosedByBroker:
        return False
    return True


def test_plan_detailed_exitcode_is_2_with_changes_pending_0_without(topology_file, broker_url):
    path = topology_file("a")
    pending = topology("plan", path, broker_url, "--detailed-exitcode")
    assert pending.exit_code == 2, pending.output
    assert topology("plan", path, broker_url).exit_code == 0  # without the flag: as before
    applied = topology("apply", path, broker_url)
    assert applied.exit_code == 0, applied.output
    clean = topology("plan", path, broker_url, "--detailed-exitcode")
    assert clean.exit_code == 0
    assert clean.stdout.startswith("What this change means: nothing changes for the subscribers")
    assert clean.stdout.endswith("On the broker:\nno changes: the broker matches the topology\n")
    drift = topology("plan", topology_file("a", "b"), broker_url, "--detailed-exitcode")
    assert drift.exit_code == 2, drift.output
    assert f"+ create queue {loader.load(path).names.queue('b')}" in drift.output


def test_apply_summarises_the_ladder_as_plan_does(topology_file, broker_url):
    path = topology_file("a")
    planned = topology("plan", path, broker_url)
    applied = topology("apply", path, broker_url)
    assert applied.exit_code == 0, applied.output
    *lines, summary = applied.stdout.splitlines()
    assert lines == planned.stdout.splitlines()
    assert lines[:2] == ["What this change means:", "  - new subscriber a will receive a.#"]
    assert (
        "+ create delay ladder: 28 exchanges, 28 queues, 56 bindings (--verbose lists them)"
        in lines
    )
    assert not any(".delay.L" in line for line in lines)
    # 124, plus the subscriber's wait exchange and its binding to the queue
    assert len(lines) < 20 and summary.endswith(": 126 change(s)")


def test_destroy_refuses_queues_that_hold_events_then_asks_then_removes_everything(
    topology_file, hub_name, broker_url
):
    path = topology_file("a", "b")
    assert topology("apply", path, broker_url).exit_code == 0
    names = loader.load(path).names
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("a.x", {})
        publisher.publish("a.y", {})
        publisher.publish("nobody.listens", {})
        publisher.publish("b.x", {}, delay=3600)  # waits in the ladder
    path = topology_file("a")  # b left the file: its queues are the hub's all the same

    refused = topology("destroy", path, broker_url, "--yes")
    assert refused.exit_code == 1
    [line] = refused.output.strip().splitlines()
    assert f"refusing to destroy hub {hub_name!r}: 3 queue(s) hold 4 event(s)" in line
    assert f"{names.queue('a')} (2 event(s))" in line and f"{names.unrouted} (1 event(s))" in line
    assert "hubbub.v1." in line and "--force" in line  # the delayed event's level is named
    assert exists(broker_url, names.queue("a")) and exists(broker_url, names.queue("b"))

    declined = topology("destroy", path, broker_url, "--force", answer="n\n")
    assert "Destroy hub" in declined.output and "deleting 4 event(s)?" in declined.output
    assert "nothing removed" in declined.output and exists(broker_url, names.queue("a"))

    done = topology("destroy", path, broker_url, "--force", answer="y\n")
    assert done.exit_code == 0, done.output
    assert f"- remove exchange {hub_name}\n" in done.output
    assert f"- remove queue {names.queue('b')}: holds 0 event(s)" in done.output
    assert f"- remove queue {names.applied}: holds 0 event(s)" in done.output  # the record
    assert "- remove delay ladder: 27 queues, 28 exchanges (--verbose lists them)" in done.output
    [level] = [line for line in done.output.splitlines() if ".delay.L" in line]
    assert level.startswith("- remove queue hubbub.v1.") and level.endswith(": holds 1 event(s)")
    assert f"- remove exchange {names.wait_exchange('b')}\n" in done.output  # b's too
    assert done.output.strip().endswith(  # 33 exchanges plus a's and b's wait exchanges
        f"destroyed hub {hub_name!r}: removed 34 queue(s) and 35 exchange(s), 4 event(s) deleted"
    )
    assert make_teardown(loader.load(path), [broker_url]).empty
    assert {c.action for c in make_plan(loader.load(path), [broker_url]).changes} == {"create"}
    again = topology("destroy", path, broker_url, "--yes")
    assert again.exit_code == 0 and "nothing to destroy" in again.output


def test_destroy_of_an_empty_hub_with_yes_asks_nothing(topology_file, broker_url):
    path = topology_file("a")
    assert topology("apply", path, broker_url).exit_code == 0
    done = topology("destroy", path, broker_url, "--yes")
    assert done.exit_code == 0, done.output
    # 33 exchanges (the record's included) plus a's wait exchange
    assert "?" not in done.output and "removed 32 queue(s) and 34 exchange(s)" in done.output
    assert not exists(broker_url, loader.load(path).names.queue("a"))
