"""``hubbub dlq``: the event's data shown, edited copies replayed, "nothing to do" outcomes."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner
from core_support import channel
from dlq_support import Failure, ids_in, park, read

from hubbub.admin import Admin, EditError
from hubbub.admin.edit import EDITED
from hubbub.admin.history import HISTORY
from hubbub.cli.dlq import NOTHING_TO_DO
from hubbub.cli.main import cli
from hubbub.envelope import ATTEMPT, TOPIC
from hubbub.errors import ConfigurationError
from hubbub.producers import Publisher

pytestmark = pytest.mark.integration

ORDER = {"order_id": 7, "email": "alice@exmaple.com", "lines": [{"sku": "A-1", "n": 2}]}


def run(*args: str, answer: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["--log-level", "WARNING", *args], input=answer, env=env)


def spec(hub: str) -> dict:
    subs = {
        "billing": {"handler": "x:y", "topics": ["order.#"]},
        "audit": {"handler": "x:y", "topics": ["order.#"]},
    }
    return {"hub": hub, "subscribers": subs}


@pytest.fixture
def parked(declare, hub_name, broker_url):
    topology = declare(spec(hub_name))
    failures = [
        Failure("order.created", ORDER, ValueError("bad email"), ago=45 * 60),
        Failure("order.paid", {"order_id": 8}, KeyError("card")),
    ]
    return topology, park(broker_url, topology, "billing", failures)


def test_show_gives_the_data_in_the_table_details_and_json(parked):
    topology, ids = parked
    hub = topology.hub
    as_json = run("dlq", "show", "billing", "--hub", hub, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert [e["data"] for e in json.loads(as_json.output)] == [ORDER, {"order_id": 8}]

    details = run("dlq", "show", "billing", "--hub", hub, "--id", ids[0], "--details")
    assert details.exit_code == 0, details.output
    pretty = textwrap.indent(json.dumps(ORDER, indent=2), "    ")
    assert "  data:\n" + pretty + "\n" in details.output

    table = run("dlq", "show", "billing", "--hub", hub)
    assert table.exit_code == 0, table.output
    header, first, second = table.output.splitlines()[:3]
    assert header.split()[-1] == "DATA"
    compact = json.dumps(ORDER, separators=(",", ":"))
    assert first.endswith("  " + compact[:39] + "…")  # a preview, clipped to the column
    assert second.endswith('{"order_id":8}')
    # FAILED is whole: the stamp and its age, not clipped to "(45m a…"
    assert "(45m ago)" in first and "…" not in first[: first.index("ValueError")]


def test_a_malformed_body_shows_as_text_with_the_reason(declare, hub_name, broker_url):
    topology = declare(spec(hub_name))
    with channel(broker_url) as ch:
        ch.confirm_delivery()
        ch.basic_publish(topology.names.dead_letter_exchange, "billing", b"{not json")
    [event] = json.loads(run("dlq", "show", "billing", "--hub", hub_name, "--json").output)
    assert event["data"] is None and event["body"] == "{not json"
    assert event["data_problem"].startswith("body is not valid JSON")


def _editor(tmp_path, replace_from: str, replace_to: str) -> str:
    """An $EDITOR that replaces one string in the file it is given."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        f"p.write_text(p.read_text().replace({replace_from!r}, {replace_to!r}))\n"
    )
    return f"{sys.executable} {script}"


def test_replay_edit_sends_the_edited_copy_to_that_subscriber_only_and_removes_the_original(
    parked, broker_url, tmp_path
):
    topology, ids = parked
    names = topology.names
    editor = _editor(tmp_path, "exmaple.com", "example.com")
    result = run(
        "dlq", "replay", "billing", "--hub", topology.hub, "--id", ids[0], "--edit",
        env={"EDITOR": editor, "VISUAL": editor},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"replayed an edited copy of {ids[0]} to queue {names.queue('billing')}" in result.output
    assert ids_in(broker_url, names.dead_letter_queue("billing")) == [ids[1]]
    [(event_id, headers, body)] = read(broker_url, names.queue("billing"))
    assert event_id == ids[0]
    assert json.loads(body) == {**ORDER, "email": "alice@example.com"}
    assert isinstance(headers[EDITED], int) and headers[TOPIC] == "order.created"
    assert ATTEMPT not in headers
    [earlier] = json.loads(headers[HISTORY])
    assert earlier["edited"] is True and earlier["exception"] == "ValueError"
    assert ids_in(broker_url, names.queue("audit")) == []  # the other subscriber saw nothing


def test_replay_data_from_a_file_stdin_or_inline_and_an_unchanged_edit_replays_nothing(
    parked, broker_url, tmp_path
):
    topology, ids = parked
    names = topology.names
    hub = topology.hub
    unchanged = run(
        "dlq", "replay", "billing", "--hub", hub, "--id", ids[0], "--edit",
        env={"EDITOR": _editor(tmp_path, "no such text", "x")},
    )  # fmt: skip
    assert unchanged.exit_code == 1 and "not changed: nothing replayed" in unchanged.output
    bad = run("dlq", "replay", "billing", "--hub", hub, "--id", ids[0], "--data", "{nope")
    assert bad.exit_code == 1 and "not valid JSON" in bad.output
    nan = run("dlq", "replay", "billing", "--hub", hub, "--id", ids[0], "--data", "[NaN]")
    assert nan.exit_code == 1 and "NaN is not JSON" in nan.output
    both = run("dlq", "replay", "billing", "--hub", hub, "--all", "--data", "1")
    assert both.exit_code == 1 and "exactly one --id" in both.output
    assert ids_in(broker_url, names.dead_letter_queue("billing")) == ids

    fixed = tmp_path / "fixed.json"
    fixed.write_text('{"order_id": 8, "card": "visa"}')
    from_file = run("dlq", "replay", "billing", "--hub", hub, "--id", ids[1], "--data", f"@{fixed}")
    assert from_file.exit_code == 0, from_file.output
    from_stdin = run(
        "dlq", "replay", "billing", "--hub", hub, "--id", ids[0], "--data", "-", answer='{"n": 1}'
    )
    assert from_stdin.exit_code == 0, from_stdin.output
    bodies = [json.loads(body) for _, _, body in read(broker_url, names.queue("billing"))]
    assert bodies == [{"order_id": 8, "card": "visa"}, {"n": 1}]
    assert ids_in(broker_url, names.dead_letter_queue("billing")) == []


def test_the_original_stays_parked_when_the_edited_copy_is_not_confirmed(parked, broker_url):
    topology, ids = parked
    names = topology.names
    queue = names.queue("billing")
    with channel(broker_url) as ch:  # a queue that refuses every publish: the copy is nacked
        ch.queue_delete(queue)
        ch.queue_declare(
            queue, durable=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
        )
    admin = Admin(topology, url=broker_url)
    with pytest.raises(EditError, match="nothing replayed, the original is still parked"):
        admin.replay_edited("billing", ids[0], {"fixed": True})
    assert ids_in(broker_url, names.dead_letter_queue("billing")) == ids
    [original] = admin.show("billing", limit=1)
    assert original.data == ORDER and EDITED not in original.headers
    with pytest.raises(ConfigurationError, match="no event nope"):
        admin.replay_edited("billing", "nope", {})


def test_replaying_nothing_exits_3_for_a_subscriber_and_for_unrouted(declare, hub_name, broker_url):
    declare(spec(hub_name))
    empty = run("dlq", "replay", "billing", "--hub", hub_name, "--all")
    assert empty.exit_code == NOTHING_TO_DO, empty.output
    assert "nothing to replay: no event of billing matches (all events)" in empty.output
    dry = run("dlq", "replay", "billing", "--hub", hub_name, "--all", "--dry-run")
    assert dry.exit_code == NOTHING_TO_DO, dry.output
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish("nobody.listens", {})
    stuck = run("dlq", "replay", "unrouted", "--hub", hub_name, "--all")
    assert stuck.exit_code == NOTHING_TO_DO, stuck.output
    assert "left 1 event(s) in place: no subscriber for nobody.listens" in stuck.output
    assert "nothing to replay: every matching event stays in place" in stuck.output
    moved = run("dlq", "replay", "unrouted", "--hub", hub_name, "--topic", "x.y")
    assert moved.exit_code == NOTHING_TO_DO, moved.output


def test_purge_by_id_does_not_ask_a_filter_does_and_nothing_to_delete_exits_3(parked, broker_url):
    topology, ids = parked
    dlq = topology.names.dead_letter_queue("billing")
    by_id = run("dlq", "purge", "billing", "--hub", topology.hub, "--id", ids[0])  # no input
    assert by_id.exit_code == 0, by_id.output
    assert "for good?" not in by_id.output and f"deleted {ids[0]}" in by_id.output
    assert ids_in(broker_url, dlq) == [ids[1]]
    declined = run(
        "dlq", "purge", "billing", "--hub", topology.hub, "--topic", "order.#", answer="n\n"
    )
    assert "Delete 1 event(s) of billing (topic order.#) for good?" in declined.output
    assert ids_in(broker_url, dlq) == [ids[1]]
    again = run("dlq", "purge", "billing", "--hub", topology.hub, "--id", ids[0])
    assert again.exit_code == NOTHING_TO_DO, again.output
    assert "nothing to delete" in again.output
    none = run("dlq", "purge", "billing", "--hub", topology.hub, "--topic", "no.such")
    assert none.exit_code == NOTHING_TO_DO, none.output
