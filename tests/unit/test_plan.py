"""The diff between what a topology wants and what the broker holds (pure, from a fake)."""

from __future__ import annotations

import dataclasses

from hubbub.topology.declare import explain
from hubbub.topology.layout import Binding, Layout, layout
from hubbub.topology.loader import from_mapping
from hubbub.topology.plan import (
    Observed,
    ObservedExchange,
    ObservedQueue,
    argument_differences,
    plan,
)

TOPOLOGY = from_mapping(
    {"hub": "events", "subscribers": {"a": {"handler": "m:f", "topics": ["x.*", "y.#"]}}}
)
WANTED = layout(TOPOLOGY)


def observed_as(wanted: Layout, **changes) -> Observed:
    """What the broker would report after applying ``wanted``, then ``changes``."""
    exchanges = {e.name: ObservedExchange(e.type, e.args) for e in wanted.exchanges}
    queues = {q.name: ObservedQueue(q.args) for q in wanted.queues}
    base = Observed(exchanges, queues, frozenset(wanted.bindings))
    return dataclasses.replace(base, **changes)


def test_an_empty_broker_gets_everything_created():
    result = plan(WANTED, Observed())
    assert not result.empty
    kinds = [(c.action, c.kind) for c in result.changes]
    assert kinds.count(("create", "exchange")) == len(WANTED.exchanges)
    assert kinds.count(("create", "queue")) == len(WANTED.queues)
    assert kinds.count(("create", "binding")) == len(WANTED.bindings)
    assert len(kinds) == len(WANTED.exchanges) + len(WANTED.queues) + len(WANTED.bindings)
    lines = str(result).splitlines()
    assert "+ create exchange events: topic" in lines
    assert "+ create binding events -> queue events.a [x.*]" in lines
    assert any(
        line.startswith("+ create queue events.a: quorum, dead-letter-exchange=events.dlx")
        for line in lines
    )


def test_a_broker_that_matches_gives_an_empty_plan():
    result = plan(WANTED, observed_as(WANTED))
    assert result.changes == ()
    assert result.empty
    assert str(result) == "no changes: the broker matches the topology"


def test_a_binding_the_file_no_longer_names_is_removed():
    stale = Binding("events", "events.a", "z.*")
    result = plan(WANTED, observed_as(WANTED, bindings=frozenset({*WANTED.bindings, stale})))
    assert [(c.action, c.binding) for c in result.changes] == [("remove", stale)]
    assert not result.empty
    assert (
        str(result) == "- remove binding events -> queue events.a [z.*]: no longer in the topology"
    )


def test_a_missing_binding_is_created():
    missing = Binding("events", "events.a", "y.#")
    have = frozenset(WANTED.bindings) - {missing}
    result = plan(WANTED, observed_as(WANTED, bindings=have))
    assert [(c.action, c.binding) for c in result.changes] == [("create", missing)]


def test_a_queue_with_other_arguments_is_a_conflict_naming_queue_argument_and_fix():
    queues = {q.name: ObservedQueue(q.args) for q in WANTED.queues}
    queues["events.a"] = ObservedQueue(
        {**queues["events.a"].arguments, "x-delivery-limit": 5}, messages=7
    )
    result = plan(WANTED, observed_as(WANTED, queues=queues))
    assert len(result.changes) == 1
    conflict = result.conflicts[0]
    assert (conflict.action, conflict.kind, conflict.name) == ("conflict", "queue", "events.a")
    assert "argument x-delivery-limit is 5 on the broker, the topology needs 20" in conflict.detail
    assert "drain it, delete it (rabbitmqctl delete_queue events.a) and apply again" in (
        conflict.detail
    )
    assert "7 messages in it now" in conflict.detail
    assert result.empty  # apply creates nothing, but refuses because of the conflict


def test_a_classic_queue_where_a_quorum_queue_is_wanted_lists_every_difference():
    queues = {q.name: ObservedQueue(q.args) for q in WANTED.queues}
    queues["events.a"] = ObservedQueue({})
    (conflict,) = plan(WANTED, observed_as(WANTED, queues=queues)).conflicts
    assert "argument x-queue-type is 'classic' on the broker, the topology needs 'quorum'" in (
        conflict.detail
    )
    assert "argument x-dead-letter-exchange is not set on the broker" in conflict.detail


def test_a_plain_queue_reads_the_same_whether_the_broker_names_its_type_or_not():
    # RabbitMQ 4.0 reports x-queue-type 'classic' on every plain queue; 3.10 leaves it out.
    assert argument_differences({}, {"x-queue-type": "classic"}) == []
    assert argument_differences({"x-queue-type": "classic"}, {}) == []
    (as_310,) = argument_differences({"x-queue-type": "quorum"}, {})
    (as_40,) = argument_differences({"x-queue-type": "quorum"}, {"x-queue-type": "classic"})
    assert (
        as_310
        == as_40
        == ("argument x-queue-type is 'classic' on the broker, the topology needs 'quorum'")
    )


def test_a_non_durable_queue_is_a_conflict():
    queues = {q.name: ObservedQueue(q.args) for q in WANTED.queues}
    queues["events.a.dlq"] = ObservedQueue(queues["events.a.dlq"].arguments, durable=False)
    (conflict,) = plan(WANTED, observed_as(WANTED, queues=queues)).conflicts
    assert conflict.name == "events.a.dlq"
    assert conflict.detail.startswith("not durable.")


def test_an_exchange_of_another_type_is_a_conflict():
    exchanges = {e.name: ObservedExchange(e.type, e.args) for e in WANTED.exchanges}
    exchanges["events"] = ObservedExchange("fanout", {})
    (conflict,) = plan(WANTED, observed_as(WANTED, exchanges=exchanges)).conflicts
    assert (conflict.kind, conflict.name) == ("exchange", "events")
    assert "exists as a fanout exchange" in conflict.detail
    assert "needs a durable topic exchange" in conflict.detail


def test_a_queue_the_file_no_longer_names_is_reported_obsolete_never_removed():
    queues = {q.name: ObservedQueue(q.args) for q in WANTED.queues}
    queues["events.gone"] = ObservedQueue({"x-queue-type": "quorum"}, messages=3)
    result = plan(WANTED, observed_as(WANTED, queues=queues))
    (change,) = result.changes
    assert (change.action, change.kind, change.name) == ("obsolete", "queue", "events.gone")
    assert "kept (3 messages)" in change.detail
    assert result.empty


def test_broker_refusals_are_explained():
    text = (
        "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'events.a' in "
        "vhost '/': received the value '20' of type 'signedint' but current is the value '5' "
        "of type 'signedint'"
    )
    assert explain("queue 'events.a'", 406, text) == (
        "queue 'events.a' already exists with x-delivery-limit '5', the topology needs '20'. "
        "RabbitMQ cannot change it in place: drain and delete the existing one (or give the "
        "subscriber a new name) and apply again"
    )
    missing = (
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost "
        "'/': received the value 'quorum' of type 'longstr' but current is none"
    )
    as_40 = missing.replace("current is none", "current is the value 'classic' of type 'longstr'")
    assert "with x-queue-type 'classic', the topology needs 'quorum'" in explain(
        "queue 'q'", 406, missing
    )
    assert explain("queue 'q'", 406, missing) == explain("queue 'q'", 406, as_40)
    assert explain("queue 'q'", 403, "ACCESS_REFUSED - no") == (
        "cannot declare queue 'q': the user lacks configure permission (ACCESS_REFUSED - no)"
    )
    assert (
        explain("queue 'q'", 404, "NOT_FOUND")
        == "cannot declare queue 'q': broker said 404 NOT_FOUND"
    )


def test_a_refusal_cut_short_by_the_brokers_255_byte_limit_is_still_explained():
    text = (
        "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue "
        f"'{'q' * 60}' in vhost '/': received the value '{'d' * 60}' of type 'longstr' but curre..."
    )
    assert explain("queue 'q'", 406, text) == (
        "queue 'q' already exists with a different x-dead-letter-exchange. RabbitMQ cannot change "
        "it in place: drain and delete the existing one (or give the subscriber a new name) and "
        "apply again"
    )


def test_the_ladder_is_summarised_unless_verbose():
    from hubbub.topology import layout, loads
    from hubbub.topology.plan import Observed, plan

    topology = loads("hub: h\nsubscribers:\n  a: {handler: 'x:y', topics: ['user.*']}\n")
    result = plan(layout(topology), Observed())
    short = result.describe()
    assert "+ create delay ladder: 28 exchanges, 28 queues, 56 bindings" in short
    assert "hubbub.v1.h.delay.L05" not in short
    assert "+ create queue h.a" in short
    assert "hubbub.v1.h.delay.L05" in result.describe(verbose=True)
