"""Compare the layout a topology wants with what the broker has (pure).

The plan is what ``hubbub topology plan`` prints and ``apply`` carries out:
objects to create, bindings the file no longer names (removed by apply, so a
subscriber stops receiving what it unsubscribed from), and conflicts that
apply cannot fix because RabbitMQ never changes an existing queue's
arguments. Queues the file no longer names are reported, never deleted:
they may hold events. The one exception is an old wait queue (a subscriber's
``delay:`` changed or went): it drains into its subscriber by itself, so
once it is empty and unbound apply deletes it (``remove queue``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hubbub.topology.durations import format_duration
from hubbub.topology.layout import Binding, Exchange, Layout, Queue
from hubbub.topology.names import HubNames

Action = Literal["create", "remove", "conflict", "obsolete"]


@dataclass(frozen=True, slots=True)
class ObservedQueue:
    arguments: Mapping[str, Any]
    messages: int = 0
    durable: bool = True


@dataclass(frozen=True, slots=True)
class ObservedExchange:
    type: str
    arguments: Mapping[str, Any]
    durable: bool = True


@dataclass(frozen=True, slots=True)
class Observed:
    """What the broker holds of one hub's names (from the management API)."""

    exchanges: Mapping[str, ObservedExchange] = field(default_factory=dict)
    queues: Mapping[str, ObservedQueue] = field(default_factory=dict)
    bindings: frozenset[Binding] = frozenset()
    #: Queues the API listed without a message count (their ``messages`` reads 0
    #: until counted over AMQP; see :func:`hubbub.topology.observe.has_counts`).
    uncounted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    kind: Literal["exchange", "queue", "binding"]
    name: str
    detail: str = ""
    binding: Binding | None = None

    def __str__(self) -> str:
        sign = {"create": "+", "remove": "-", "conflict": "!", "obsolete": "?"}[self.action]
        text = f"{sign} {self.action} {self.kind} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]

    @property
    def conflicts(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == "conflict")

    @property
    def empty(self) -> bool:
        """True when apply would change nothing on the broker."""
        return not any(c.action in ("create", "remove") for c in self.changes)

    def __str__(self) -> str:
        return self.describe(verbose=True)

    def describe(self, *, verbose: bool = False) -> str:
        """The plan as lines; unless ``verbose``, the delay ladder's changes in one line."""
        if not self.changes:
            return "no changes: the broker matches the topology"
        return "\n".join(summarize(self.changes, verbose=verbose))


def summarize(
    changes: tuple[Change, ...], *, verbose: bool = False, keep: Collection[str] = ()
) -> list[str]:
    """One line per change; unless ``verbose``, each action on the ladder in one line.

    The ladder is 28 exchanges, 28 queues and 56 bindings that no one reads
    one by one: ``plan``, ``apply`` and ``destroy`` all print it this way.
    Changes to the queues named in ``keep`` get their own line all the same
    (``destroy``: a level that holds delayed events).
    """
    if verbose:
        return [str(c) for c in changes]
    ladder = [
        c
        for c in changes
        if c.action in ("create", "remove")
        and _in_ladder(c)
        and not (c.kind == "queue" and c.name in keep)
    ]
    lines = [str(c) for c in changes if c not in ladder]
    for action in ("create", "remove"):
        mine = [c for c in ladder if c.action == action]
        if not mine:
            continue
        counts = Counter(c.kind for c in mine)
        parts = ", ".join(f"{n} {kind}s" for kind, n in counts.items())
        sizes = {m[1] for c in mine if (m := _GROUP_SIZE.search(c.detail))}
        each = f" ({', '.join(sorted(sizes))} replicas each)" if sizes else ""
        sign = "+" if action == "create" else "-"
        lines.append(f"{sign} {action} delay ladder: {parts}{each} (--verbose lists them)")
    return lines


#: A queue's replicas as :func:`_describe` writes them in a change's detail.
_GROUP_SIZE = re.compile(r"quorum-initial-group-size=(\d+)")


def _in_ladder(change: Change) -> bool:
    binding = change.binding
    name = binding.source if binding is not None else change.name
    return ".delay.L" in name and name.startswith("hubbub.")


def plan(layout: Layout, observed: Observed) -> Plan:
    """The changes that bring the broker from ``observed`` to ``layout``."""
    observed = _without_record(layout.names.applied, observed)
    changes = [*_exchange_changes(layout.exchanges, observed)]
    changes += _queue_changes(layout.queues, observed)
    wanted = set(layout.bindings)
    changes += [
        Change("create", "binding", str(b), binding=b)
        for b in layout.bindings
        if b not in observed.bindings
    ]
    changes += [
        Change("remove", "binding", str(b), "no longer in the topology", binding=b)
        for b in sorted(observed.bindings - wanted, key=str)
        if not _drains_waiting(layout.names, b)
    ]
    declared = {q.name for q in layout.queues}
    changes += [
        _obsolete(layout.names, name, q, observed.bindings)
        for name, q in sorted(observed.queues.items())
        if name not in declared
    ]
    return Plan(tuple(changes))


def _obsolete(names: HubNames, name: str, q: ObservedQueue, bound: frozenset[Binding]) -> Change:
    """A queue the file no longer names: kept, unless it is an old wait queue now empty."""
    wait = names.parse_wait_queue(name)
    if wait is None:
        return Change(
            "obsolete",
            "queue",
            name,
            f"no longer in the topology; kept ({q.messages} messages): once drained, "
            f"delete it: rabbitmqctl delete_queue {name} --if-empty",
        )
    subscriber, seconds = wait
    old = f"{subscriber}'s old {format_duration(seconds)} wait queue"
    if q.messages == 0 and not any(b.destination == name for b in bound):
        return Change("remove", "queue", name, f"{old} is empty: apply deletes it")
    return Change(
        "obsolete",
        "queue",
        name,
        f"{old}: {_events(q.messages)} still waiting keep their {format_duration(seconds)} "
        "delay and then reach the subscriber; apply deletes it once empty",
    )


def _events(n: int) -> str:
    return f"{n} event" if n == 1 else f"{n} events"


def deletable_wait_queues(current: Plan) -> tuple[str, ...]:
    """Old wait queues ``apply`` deletes: empty, and unbound since an earlier apply.

    Unbound *before* this apply, so nothing can have been routed into them
    since their count was taken (quorum queues refuse ``if-empty`` deletes,
    NOTES.md); the caller still counts each again just before deleting it.
    """
    return tuple(c.name for c in current.changes if c.action == "remove" and c.kind == "queue")


def _without_record(record: str, observed: Observed) -> Observed:
    """``observed`` without the record of the last apply: apply's own, outside the layout
    (see :mod:`hubbub.topology.record`)."""
    return replace(
        observed,
        queues={n: q for n, q in observed.queues.items() if n != record},
        bindings=frozenset(b for b in observed.bindings if b.source != record),
    )


def _drains_waiting(names: HubNames, binding: Binding) -> bool:
    """True for a subscriber's wait exchange bound to its own queue: kept even when the
    subscriber left the file, so events still waiting for it reach its queue (which
    apply keeps too) instead of being parked as unrouted, where a replay to the hub
    would hand them to the other subscribers a second time."""
    subscriber = names.parse_wait_exchange(binding.source)
    return subscriber is not None and binding.destination == names.queue(subscriber)


def _exchange_changes(exchanges: tuple[Exchange, ...], observed: Observed) -> list[Change]:
    changes = []
    for ex in exchanges:
        have = observed.exchanges.get(ex.name)
        if have is None:
            changes.append(Change("create", "exchange", ex.name, ex.type))
        elif have.type != ex.type or dict(have.arguments) != ex.args or not have.durable:
            changes.append(
                Change(
                    "conflict",
                    "exchange",
                    ex.name,
                    f"exists as a {'' if have.durable else 'transient '}{have.type} exchange "
                    f"with {dict(have.arguments)}, the topology needs a durable {ex.type} exchange "
                    f"with {ex.args}: delete it (rabbitmqadmin delete exchange name={ex.name}) "
                    "and apply again",
                )
            )
    return changes


def _queue_changes(queues: tuple[Queue, ...], observed: Observed) -> list[Change]:
    changes = []
    for q in queues:
        have = observed.queues.get(q.name)
        if have is None:
            changes.append(Change("create", "queue", q.name, _describe(q.args)))
            continue
        diff = argument_differences(q.args, have.arguments)
        if diff and q.args.get("x-queue-type") == "stream":
            changes.append(Change("conflict", "queue", q.name, _archive_conflict(q.name, diff)))
        elif diff or not have.durable:
            changes.append(
                Change(
                    "conflict",
                    "queue",
                    q.name,
                    f"{'; '.join(diff) or 'not durable'}. RabbitMQ cannot change a queue's "
                    f"arguments: drain it, delete it (rabbitmqctl delete_queue {q.name}) and "
                    f"apply again ({have.messages} messages in it now)"
                    + _replicas_hint(q.args, have.arguments),
                )
            )
    return changes


def _archive_conflict(name: str, diff: list[str]) -> str:
    """A changed archive: its arguments are fixed, and deleting it deletes the history."""
    return (
        f"{'; '.join(diff)}. RabbitMQ cannot change a stream's arguments, and deleting the "
        "archive deletes the events it holds: put the archive's settings in the file back as "
        "they were, and change its retention in place with a policy instead, e.g. "
        f"rabbitmqctl set_policy hubbub-archive '^{re.escape(name)}$' "
        """'{"max-age":"60D","max-length-bytes":100000000000}' --apply-to queues"""
    )


def _replicas_hint(want: Mapping[str, Any], have: Mapping[str, Any]) -> str:
    key = "x-quorum-initial-group-size"
    if want.get(key) == have.get(key):
        return ""
    current = have.get(key)
    keep = "remove replicas from the file" if current is None else f"set replicas: {current}"
    return (
        f". Or {keep} and change the members of existing queues in place "
        "(rabbitmq-queues grow <node> all, rabbitmq-queues shrink <node>)"
    )


#: Arguments whose absence means a value: RabbitMQ 4.0 reports ``x-queue-type:
#: classic`` on every plain queue, 3.10 leaves it out. Both are the same queue.
IMPLIED_ARGUMENTS: Mapping[str, Any] = {"x-queue-type": "classic"}


def argument_differences(want: Mapping[str, Any], have: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two queue argument tables.

    Implied values (:data:`IMPLIED_ARGUMENTS`) are filled in on both sides, so
    a plain queue matches on every broker version and reads the same.
    """
    want, have = {**IMPLIED_ARGUMENTS, **want}, {**IMPLIED_ARGUMENTS, **have}
    return [
        f"argument {key} is {_shown(have.get(key))} on the broker, "
        f"the topology needs {_shown(want.get(key))}"
        for key in sorted(set(want) | set(have))
        if want.get(key) != have.get(key)
    ]


def _shown(value: Any) -> str:
    return "not set" if value is None else repr(value)


def _describe(args: Mapping[str, Any]) -> str:
    kind = args.get("x-queue-type", "classic")
    extras = [f"{k.removeprefix('x-')}={v}" for k, v in sorted(args.items()) if k != "x-queue-type"]
    return ", ".join([kind, *extras])
