"""What plan and apply do when a subscriber's ``delay:`` changes or goes (pure, from a fake)."""

from __future__ import annotations

import dataclasses

from hubbub.topology.layout import Binding, Layout, layout
from hubbub.topology.loader import from_mapping
from hubbub.topology.plan import (
    Observed,
    ObservedExchange,
    ObservedQueue,
    deletable_wait_queues,
    plan,
)
from hubbub.topology.sync import _delete_drained
from hubbub.transport.session import QueueCounts

OLD = "hubbub.v1.events.wait.reminder.259200s"
NEW = "hubbub.v1.events.wait.reminder.432000s"


def topology(delay: str | None):
    reminder = {"handler": "m:f", "topics": ["user.active"]}
    if delay is not None:
        reminder["delay"] = delay
    return from_mapping({"hub": "events", "subscribers": {"reminder": reminder}})


def applied(wanted: Layout, messages: dict[str, int] | None = None) -> Observed:
    """What the broker reports after applying ``wanted``, with ``messages`` in its queues."""
    messages = messages or {}
    exchanges = {e.name: ObservedExchange(e.type, e.args) for e in wanted.exchanges}
    queues = {q.name: ObservedQueue(q.args, messages.get(q.name, 0)) for q in wanted.queues}
    return Observed(exchanges, queues, frozenset(wanted.bindings))


def after_delay_change(delay: str | None, old: dict[str, int]) -> Observed:
    """The broker after applying ``delay``, with the old wait queues ``old`` left (unbound)."""
    observed = applied(layout(topology(delay)))
    queues = {**observed.queues, **{name: ObservedQueue(WAIT_ARGS, n) for name, n in old.items()}}
    return dataclasses.replace(observed, queues=queues)


WAIT_ARGS = next(q for q in layout(topology("3d")).queues if q.name == OLD).args


def test_a_changed_delay_creates_the_new_wait_queue_and_unbinds_the_old():
    result = plan(layout(topology("5d")), applied(layout(topology("3d")), {OLD: 12}))
    assert ("create", "queue", NEW) in [(c.action, c.kind, c.name) for c in result.changes]
    removed = {c.binding for c in result.changes if c.action == "remove"}
    assert removed == {
        Binding("events", OLD, "user.active"),
        Binding("hubbub.v1.events.delivery", OLD, next(iter(_event_keys()))),
    }
    created = {c.binding for c in result.changes if c.action == "create" and c.binding}
    assert Binding("events", NEW, "user.active") in created
    (old,) = [c for c in result.changes if c.name == OLD]
    assert old.action == "obsolete"
    assert old.detail == (
        "reminder's old 3d wait queue: 12 events still waiting keep their 3d delay and then "
        "reach the subscriber; apply deletes it once empty"
    )
    assert deletable_wait_queues(result) == ()


def _event_keys() -> set[str]:
    return {
        b.routing_key
        for b in layout(topology("3d")).bindings
        if b.destination == OLD and b.source != "events"
    }


def test_a_removed_delay_keeps_the_wait_exchange_so_the_old_queue_drains():
    wanted = layout(topology(None))
    result = plan(wanted, applied(layout(topology("3d")), {OLD: 1}))
    # nothing into the old queue, but its way out stays: the fanout into the subscriber's queue
    assert not any(c.action == "remove" and c.kind == "exchange" for c in result.changes)
    assert Binding("hubbub.v1.events.wait.reminder", "events.reminder", "") in wanted.bindings
    assert Binding("events", "events.reminder", "user.active") in {
        c.binding for c in result.changes if c.action == "create"
    }
    (old,) = [c for c in result.changes if c.name == OLD]
    assert (old.action, old.kind) == ("obsolete", "queue")
    assert "1 event still waiting keep their 3d delay" in old.detail


def test_an_old_wait_queue_still_bound_is_kept_even_when_empty():
    # bound until this apply: an event may be on its way in while the count is read
    result = plan(layout(topology("5d")), applied(layout(topology("3d"))))
    (old,) = [c for c in result.changes if c.name == OLD]
    assert old.action == "obsolete"
    assert deletable_wait_queues(result) == ()


def test_an_old_wait_queue_unbound_and_empty_is_deleted_by_apply():
    # a first apply unbound it (and bound the new one); this one finds it empty
    before = after_delay_change("5d", {OLD: 0})
    result = plan(layout(topology("5d")), before)
    assert [str(c) for c in result.changes] == [
        f"- remove queue {OLD}: reminder's old 3d wait queue is empty: apply deletes it"
    ]
    assert not result.empty
    assert deletable_wait_queues(result) == (OLD,)


def test_an_old_wait_queue_unbound_but_holding_events_is_kept():
    result = plan(layout(topology(None)), after_delay_change(None, {OLD: 2}))
    (old,) = [c for c in result.changes if c.name == OLD]
    assert old.action == "obsolete"
    assert deletable_wait_queues(result) == ()


def test_other_queues_the_file_no_longer_names_are_never_deleted():
    before = applied(layout(topology(None)))
    before = dataclasses.replace(
        before,
        queues={**before.queues, "events.gone": ObservedQueue({"x-queue-type": "quorum"})},
    )
    result = plan(layout(topology(None)), before)
    assert [(c.action, c.name) for c in result.changes] == [("obsolete", "events.gone")]
    assert deletable_wait_queues(result) == ()


class FakeSession:
    """Queue counts by name; records deletes."""

    def __init__(self, ready: dict[str, int]) -> None:
        self.ready = ready
        self.deleted: list[str] = []

    def queue_counts(self, name: str) -> QueueCounts | None:
        return QueueCounts(self.ready[name], 0) if name in self.ready else None

    def delete_queue(self, name: str) -> None:
        self.deleted.append(name)


def test_apply_counts_each_old_wait_queue_again_and_keeps_one_that_holds_events():
    # the management API's counts lag: the plan said empty, the queue says otherwise
    session = FakeSession({OLD: 2, NEW: 0})
    _delete_drained(session, [OLD, NEW, "hubbub.v1.events.wait.reminder.1s"])  # type: ignore[arg-type]
    assert session.deleted == [NEW]


def test_in_memory_the_old_queue_drains_into_the_subscriber_then_goes_with_a_later_apply():
    from hubbub.producers import Publisher
    from hubbub.testing.clock import FakeClock
    from hubbub.transport.memory.transport import MemoryTransport

    clock = FakeClock()
    memory = MemoryTransport(clock.time)
    memory.apply(topology("3d"))
    Publisher("events", transport=memory.publisher()).publish("user.active", {})
    memory.apply(topology("5d"))
    assert memory.broker.has_queue(OLD) and memory.broker.has_queue(NEW)
    memory.apply(topology("5d"))
    assert len(memory.broker.messages(OLD)) == 1  # still waiting: kept
    clock.advance(days=3)
    memory.expire()
    assert len(memory.broker.messages("events.reminder")) == 1  # the old delay, then on
    (old,) = [c for c in memory.plan(topology("5d")).changes if c.name == OLD]
    assert old.action == "remove"
    memory.apply(topology("5d"))
    assert not memory.broker.has_queue(OLD)
