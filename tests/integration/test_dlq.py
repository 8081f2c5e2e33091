"""``hubbub dlq`` and the admin API against the real broker: list, show, replay, purge."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from core_support import channel
from dlq_support import Failure, PaymentDeclinedError, ids_in, park, read

from hubbub.admin import Admin, select
from hubbub.admin.history import HISTORY
from hubbub.cli.dlq import NOTHING_TO_DO
from hubbub.cli.main import cli
from hubbub.envelope import ATTEMPT, TOPIC
from hubbub.producers import Publisher

pytestmark = pytest.mark.integration


def run(*args: str, answer: str | None = None):
    return CliRunner().invoke(cli, ["--log-level", "WARNING", *args], input=answer)


def spec(hub: str, **more) -> dict:
    subs = {
        "billing": {"handler": "x:y", "topics": ["user.#", "billing.#"], "retry": {"attempts": 1}},
        "audit": {"handler": "x:y", "topics": ["user.#", "billing.#"]},
        **more,
    }
    return {"hub": hub, "subscribers": subs}


FAILURES = [
    Failure("user.signed_up", {"n": 0}, ValueError("bad email")),
    Failure("user.deleted", {"n": 1}, KeyError("user_id"), ago=3 * 3600),
    Failure("billing.invoice.paid", {"n": 2}, PaymentDeclinedError("card expired")),
    Failure("user.signed_up", {"n": 3}, ValueError("bad name"), ago=3 * 3600),
    Failure("billing.refund", {"n": 4}, PaymentDeclinedError("too late")),
]


@pytest.fixture
def parked(declare, hub_name, broker_url):
    topology = declare(spec(hub_name))
    ids = park(broker_url, topology, "billing", FAILURES)
    return topology, ids


def shown(hub: str, *args: str) -> list[dict]:
    result = run("dlq", "show", "billing", "--hub", hub, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_real_failure_shows_with_its_record_and_showing_leaves_the_queue_as_it_was(
    declare, run_worker, hub_name, broker_url
):
    topology = declare(spec(hub_name))
    done = threading.Event()

    def handler(event):
        if event.data["n"] == 4:
            done.set()
        raise ValueError(f"cannot bill {event.data['n']}")

    run_worker(topology, {"billing": handler}, subscribers=["billing"])
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = [publisher.publish("billing.invoice.paid", {"n": n}) for n in range(5)]
    assert done.wait(10)
    admin = Admin(topology, url=broker_url)
    events = []
    for _ in range(50):  # the last dead-letter copy is confirmed just after the handler ran
        events = admin.show("billing")
        if len(events) == 5:
            break
        threading.Event().wait(0.1)
    assert [e.id for e in events] == ids
    first = events[0]
    assert (first.topic, first.subscriber, first.attempts, first.exception, first.message) == (
        "billing.invoice.paid",
        "billing",
        1,
        "ValueError",
        "cannot bill 0",
    )
    assert first.reason == "attempts exhausted" and first.dead_lettered_by == "hubbub"
    assert "raise ValueError" in first.traceback and first.last_failed is not None
    # Reading again sees the same events in the same order: nothing removed or moved.
    assert [e.id for e in admin.show("billing")] == ids
    assert ids_in(broker_url, topology.names.dead_letter_queue("billing")) == ids


def test_show_filters_by_exception_topic_since_id_and_limit(parked):
    topology, ids = parked
    hub = topology.hub
    assert [e["id"] for e in shown(hub)] == ids
    assert [e["id"] for e in shown(hub, "--exception", "ValueError")] == [ids[0], ids[3]]
    assert [e["id"] for e in shown(hub, "--exception", "PaymentDeclinedError")] == [ids[2], ids[4]]
    full = "dlq_support.PaymentDeclinedError"
    assert [e["id"] for e in shown(hub, "--exception", full)] == [ids[2], ids[4]]
    assert [e["id"] for e in shown(hub, "--topic", "user.*")] == [ids[0], ids[1], ids[3]]
    assert [e["id"] for e in shown(hub, "--topic", "billing.#")] == [ids[2], ids[4]]
    assert [e["id"] for e in shown(hub, "--since", "1h")] == [ids[0], ids[2], ids[4]]
    assert [e["id"] for e in shown(hub, "--id", ids[3], "--id", ids[1])] == [ids[1], ids[3]]
    assert [e["id"] for e in shown(hub, "--topic", "user.#", "--since", "1h")] == [ids[0]]
    assert [e["id"] for e in shown(hub, "--limit", "2")] == ids[:2]
    assert [e["id"] for e in shown(hub)] == ids  # stopping early moved nothing
    record = shown(hub, "--id", ids[2])[0]
    assert record["exception"] == full and record["message"] == "card expired"
    assert record["attempts"] == 3 and record["topic"] == "billing.invoice.paid"
    table = run("dlq", "show", "billing", "--hub", hub, "--topic", "user.*")
    assert table.exit_code == 0
    assert [line.split()[0] for line in table.output.splitlines()[1:4]] == [ids[0], ids[1], ids[3]]
    assert "3 event(s) shown (topic user.*)" in table.output


def test_list_shows_depth_oldest_failure_and_most_common_exceptions(parked, broker_url):
    topology, _ = parked
    with Publisher(topology.hub, url=broker_url) as publisher:
        publisher.publish("nobody.listens", {})
    result = run("dlq", "list", "--hub", topology.hub, "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(rows) == {"audit", "billing", "unrouted"}
    billing = rows["billing"]
    assert billing["depth"] == 5 and billing["queue"] == f"{topology.hub}.billing.dlq"
    top = {row["label"]: row["count"] for row in billing["top"]}
    assert top == {"ValueError": 2, "dlq_support.PaymentDeclinedError": 2, "KeyError": 1}
    oldest = datetime.fromisoformat(billing["oldest"])  # from the records' first failure
    assert abs((datetime.now(timezone.utc) - oldest).total_seconds() - 3 * 3600) < 120
    assert rows["audit"]["depth"] == 0
    assert rows["unrouted"]["depth"] == 1
    assert rows["unrouted"]["top"] == [{"label": "nobody.listens", "count": 1}]
    table = run("dlq", "list", "--hub", topology.hub)
    assert "billing" in table.output and "(3h ago)" in table.output


def test_replay_by_id_goes_to_that_subscribers_queue_only_attempts_reset_history_kept(
    parked, broker_url
):
    topology, ids = parked
    names = topology.names
    result = run("dlq", "replay", "billing", "--hub", topology.hub, "--id", ids[2])
    assert result.exit_code == 0, result.output
    assert f"replayed {ids[2]} billing.invoice.paid" in result.output
    assert ids_in(broker_url, names.dead_letter_queue("billing")) == [
        ids[0],
        ids[1],
        ids[3],
        ids[4],
    ]
    [(event_id, headers, body)] = read(broker_url, names.queue("billing"))
    assert (event_id, json.loads(body)) == (ids[2], {"n": 2})
    assert ATTEMPT not in headers and headers[TOPIC] == "billing.invoice.paid"
    assert not any(k.startswith("x-") for k in headers)
    [earlier] = json.loads(headers[HISTORY])
    assert earlier["exception"] == "dlq_support.PaymentDeclinedError"
    assert earlier["attempts"] == 3 and earlier["message"] == "card expired"
    assert ids_in(broker_url, names.queue("audit")) == []  # the other subscriber saw nothing


def test_a_replayed_event_is_handled_from_attempt_one_and_fails_again_with_its_history(
    parked, run_worker, broker_url
):
    topology, ids = parked
    seen = []
    failed = threading.Event()

    def handler(event):
        seen.append(event)
        failed.set()
        raise RuntimeError("still broken")

    run_worker(topology, {"billing": handler}, subscribers=["billing"])
    admin = Admin(topology, url=broker_url)
    result = admin.replay("billing", select(ids=[ids[0]]))
    assert (result.moved, result.ids) == (1, [ids[0]])
    assert failed.wait(10)
    assert (seen[0].id, seen[0].topic, seen[0].attempt) == (ids[0], "user.signed_up", 1)
    for _ in range(50):
        again = admin.show("billing", select(ids=[ids[0]]))
        if again:
            break
        threading.Event().wait(0.1)
    [event] = again
    assert (event.exception, event.attempts, event.position) == ("RuntimeError", 1, 4)
    assert [h["exception"] for h in event.history] == ["ValueError"]


def test_dry_run_moves_nothing_and_replay_all_moves_everything_in_order(parked, broker_url):
    topology, ids = parked
    names = topology.names
    dry = run("dlq", "replay", "billing", "--hub", topology.hub, "--all", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert [line.split()[2] for line in dry.output.splitlines()[:5]] == ids
    assert "5 event(s) would replay" in dry.output
    assert ids_in(broker_url, names.dead_letter_queue("billing")) == ids
    assert ids_in(broker_url, names.queue("billing")) == []
    done = run("dlq", "replay", "billing", "--hub", topology.hub, "--all", "--rate", "1000/s")
    assert done.exit_code == 0, done.output
    assert "5 event(s) replayed to queue" in done.output
    assert ids_in(broker_url, names.dead_letter_queue("billing")) == []
    assert ids_in(broker_url, names.queue("billing")) == ids


def test_replay_by_filter(parked, broker_url):
    topology, ids = parked
    admin = Admin(topology, url=broker_url)
    result = admin.replay("billing", select(topic="user.*", since="1h"))
    assert result.ids == [ids[0]]
    assert ids_in(broker_url, topology.names.queue("billing")) == [ids[0]]


def test_purge_by_id_and_all_asks_first_unless_yes(parked, broker_url):
    topology, ids = parked
    dlq = topology.names.dead_letter_queue("billing")
    one = run("dlq", "purge", "billing", "--hub", topology.hub, "--id", ids[1], "--yes")
    assert one.exit_code == 0, one.output
    assert "1 event(s) deleted" in one.output
    assert ids_in(broker_url, dlq) == [ids[0], ids[2], ids[3], ids[4]]
    declined = run("dlq", "purge", "billing", "--hub", topology.hub, "--all", answer="n\n")
    assert "Delete 4 event(s) of billing (all events) for good?" in declined.output
    assert "nothing deleted" in declined.output
    assert ids_in(broker_url, dlq) == [ids[0], ids[2], ids[3], ids[4]]
    accepted = run("dlq", "purge", "billing", "--hub", topology.hub, "--all", answer="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "4 event(s) deleted" in accepted.output
    assert ids_in(broker_url, dlq) == []


BAD_INPUT = [
    (("dlq", "show", "nobody"), "unknown subscriber 'nobody'"),
    (("dlq", "show", "billing", "--topic", "user.*x"), "--topic"),
    (("dlq", "show", "billing", "--since", "yesterday"), "--since"),
    (("dlq", "show", "billing", "--exception", "not a type"), "--exception"),
    (("dlq", "replay", "billing"), "say which events"),
    (("dlq", "replay", "billing", "--all", "--rate", "fast"), "--rate"),
    (("dlq", "purge", "billing", "--all", "--id", "x", "--yes"), "--all cannot be combined"),
    (("dlq", "show", "no.such"), "not a subscriber name"),
]


def test_bad_input_is_one_clear_line(declare, hub_name):
    declare(spec(hub_name))
    for args, says in BAD_INPUT:
        result = CliRunner().invoke(cli, [*args, "--hub", hub_name])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1, (args, result.output)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
        assert says in lines[0], (args, result.output)


def test_unrouted_events_show_and_replay_to_the_hub_once_a_subscriber_exists(
    declare, hub_name, broker_url
):
    topology = declare(spec(hub_name))
    with Publisher(hub_name, url=broker_url) as publisher:
        order_id = publisher.publish("order.created", {"order": 7})
        publisher.publish("nobody.listens", {})
    [first, second] = Admin(topology, url=broker_url).show("unrouted")
    assert (first.id, first.topic, first.reason, first.subscriber) == (
        order_id,
        "order.created",
        "unrouted",
        None,
    )
    early = run("dlq", "replay", "unrouted", "--hub", hub_name, "--all")
    assert early.exit_code == NOTHING_TO_DO, early.output  # nothing moved
    assert "left 1 event(s) in place: no subscriber for order.created" in early.output
    assert len(ids_in(broker_url, topology.names.unrouted)) == 2
    grown = declare(spec(hub_name, orders={"handler": "x:y", "topics": ["order.*"]}))
    later = run("dlq", "replay", "unrouted", "--hub", hub_name, "--all")
    assert later.exit_code == 0, later.output
    assert f"replayed {order_id} order.created" in later.output
    assert ids_in(broker_url, grown.names.queue("orders")) == [order_id]
    assert ids_in(broker_url, grown.names.unrouted) == [second.id]


def test_a_dead_letter_queue_with_a_delivery_limit_is_not_read(declare, hub_name, broker_url):
    topology = declare(spec(hub_name))
    dlq = topology.names.dead_letter_queue("audit")
    with channel(broker_url) as ch:  # as if a policy or an older layout had given it one
        ch.queue_delete(dlq)
        ch.queue_declare(
            dlq, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 5}
        )
        ch.queue_bind(dlq, topology.names.dead_letter_exchange, "audit")
    park(broker_url, topology, "audit", [Failure("user.deleted", {}, ValueError("x"))])
    result = run("dlq", "show", "audit", "--hub", hub_name)
    assert result.exit_code == 1
    assert "delivery limit of 5" in result.output and "set_policy" in result.output
    with channel(broker_url) as ch:
        assert ch.queue_declare(dlq, passive=True).method.message_count == 1
