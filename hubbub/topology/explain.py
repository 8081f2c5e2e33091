"""What a change of the topology file means, in plain words (pure).

``topology plan`` lists broker objects; the people who edit the file think
in subscribers, topics, delays and settings. :func:`explain` compares the
topology applied last with the new one and says, one sentence per change,
what each subscriber will do differently ("welcome-email will also receive
billing.invoice.paid"), with the events already waiting counted from what
the broker holds.

The previous topology comes from the record ``apply`` leaves on the broker
(:mod:`hubbub.topology.record`). Without one (a hub applied by an older
hubbub), what the broker shows stands in: each subscriber's topics (the hub
exchange's bindings to its queue or wait queue) and its delay (the name of
its bound wait queue). Settings, retry policies and handlers are not on the
broker; the first sentence then says they cannot be compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from hubbub.topology import patterns
from hubbub.topology.durations import format_duration
from hubbub.topology.layout import whole_delay
from hubbub.topology.masking import Recorded, Visibility, masked_url, recorded
from hubbub.topology.model import BUILTIN_ACTIONS, Archive, RetryPolicy, Subscriber, Topology
from hubbub.topology.names import RESERVED_SUBSCRIBERS, SUBSCRIBER_NAME, HubNames
from hubbub.topology.plan import Observed
from hubbub.topology.references import visibility_of
from hubbub.topology.sizes import format_size

#: Said first when there is no record of an earlier apply and the hub exists.
NO_RECORD = (
    "the broker has no record of an earlier 'hubbub topology apply' (an older hubbub applied "
    "it): topics and delays are read from the broker; changes to settings, retry policies and "
    "handlers cannot be shown (the next apply records them)"
)


#: Said alone when neither a record nor the broker's view is at hand.
UNKNOWN = (
    "what this changes cannot be said: the broker has no record of an earlier apply and its "
    "management API did not answer"
)
#: Said after changes the consumers read from the file, not from the broker.
RESTART = (
    "handler, settings, retry, concurrency, time limit and idempotent changes take effect when the "
    "consumers restart with this file ('hubbub consume')"
)


@dataclass(frozen=True, slots=True)
class _Seen:
    """A subscriber as it was; ``full`` is None when only the broker's view is known."""

    topics: tuple[str, ...]
    delay: float | None
    full: Subscriber | None = None


def explain(
    previous: Topology | None,
    new: Topology,
    observed: Observed | None,
    *,
    visibility: Callable[[str], Visibility] = visibility_of,
) -> list[str]:
    """Sentences saying what changes from ``previous`` (None: no record) to ``new``.

    ``observed`` (what the broker holds; None when unknown) gives the counts of
    events waiting and, without a record, the previous topics and delays.
    ``visibility`` says, by handler, which settings values may be shown
    (:mod:`hubbub.topology.masking`; by default the handler is imported).
    No sentence when nothing changes.
    """
    names = new.names
    if previous is None and observed is None:
        return [UNKNOWN]
    held = observed or Observed()
    if previous is not None:
        before = {s.name: _Seen(s.topics, s.delay, s) for s in previous.subscribers}
        sentences = []
    else:
        before = from_broker(names, held)
        sentences = [NO_RECORD] if before else []
    restart = False
    for sub in new.subscribers:
        old = before.get(sub.name)
        if old is None:
            sentences.append(_added(sub))
            continue
        sentences += _changed(names, old, sub, held, counted=observed is not None)
        if old.full is not None:
            unseen = list(_unseen(old.full, sub, visibility))
            sentences += unseen
            restart = restart or bool(unseen)
    wanted = {s.name for s in new.subscribers}
    sentences += [
        _removed(names, name, held, counted=observed is not None)
        for name in before
        if name not in wanted
    ]
    had_archive = (
        previous.archive is not None if previous is not None else names.archive in held.queues
    )
    sentences += _archive(names, had_archive, new, held)
    return [*sentences, RESTART] if restart else sentences


def _archive(names: HubNames, had: bool, new: Topology, observed: Observed) -> Iterator[str]:
    """What starting or stopping the archive means (a changed retention is a conflict)."""
    if new.archive is not None and not had:
        yield (
            f"the hub will keep a copy of every event in its archive ({_bounds(new.archive)}); "
            "an event no subscriber matches is kept there instead of parked as unrouted"
        )
    elif new.archive is None and had:
        queue = observed.queues.get(names.archive)
        held = f" with {_events(queue.messages)}" if queue is not None and queue.messages else ""
        yield (
            f"the hub stops archiving events; its archive is kept{held} until its retention "
            f"ends (delete it: rabbitmqctl delete_queue {names.archive})"
        )


def _bounds(archive: Archive) -> str:
    parts = []
    if archive.retention is not None:
        parts.append(f"for {format_duration(archive.retention)}")
    if archive.max_size is not None:
        parts.append(f"at most {format_size(archive.max_size)}")
    return ", ".join(parts)


def from_broker(names: HubNames, observed: Observed) -> dict[str, _Seen]:
    """Each subscriber whose queue the broker holds: its bound topics and its delay."""
    found: dict[str, _Seen] = {}
    to_queues = [b for b in sorted(observed.bindings, key=str) if b.source == names.exchange]
    for queue in sorted(observed.queues):
        name = queue.removeprefix(names.hub + ".")
        if name == queue or name in RESERVED_SUBSCRIBERS or not SUBSCRIBER_NAME.match(name):
            continue
        topics: list[str] = []
        delay: float | None = None
        for binding in to_queues:
            waits = names.parse_wait_queue(binding.destination)
            if binding.destination == queue or (waits is not None and waits[0] == name):
                topics.append(binding.routing_key)
                delay = float(waits[1]) if waits is not None else delay
        found[name] = _Seen(tuple(topics), delay)
    return found


def _added(sub: Subscriber) -> str:
    text = f"new subscriber {sub.name} will receive {_listed(sub.topics)}"
    if sub.delay:
        text += f", each event {format_duration(sub.delay)} after it was published"
    if sub.backfill:
        text += f", starting with the archive's events of the last {format_duration(sub.backfill)}"
    if sub.idempotent:
        text += ", each event once even if it comes again (idempotent: its consumers need an inbox)"
    does = _does(sub)
    return f"{text}: {does}" if does else text


def _does(sub: Subscriber) -> str | None:
    """What a built-in action does with each event, for a reader of the file (None: code)."""
    module, _, action = sub.handler.partition(":")
    settings = sub.settings
    if module != "hubbub.actions" or any(isinstance(v, Recorded) for v in settings.values()):
        return None
    if action == "log":
        return "it logs each event"
    if action == "webhook" and isinstance(settings.get("url"), str):
        return f"it POSTs each event to {masked_url(settings['url'])}"
    topic = settings.get("topic")
    if action == "republish" and isinstance(topic, str | list):
        topics = [topic] if isinstance(topic, str) else [str(t) for t in topic]
        delay = settings.get("delay")
        later = f", {format_duration(delay) if isinstance(delay, int | float) else delay} later"
        return f"it republishes each event as {_listed(topics)}" + (later if delay else "")
    return None


def _removed(names: HubNames, name: str, observed: Observed, *, counted: bool) -> str:
    text = f"subscriber {name} is no longer in the file: it stops receiving events"
    queue = observed.queues.get(names.queue(name))
    if queue is None:
        return text
    held = f" with {_events(queue.messages)}" if counted else ""
    return (
        f"{text}; its queue is kept{held} (once drained, delete it: "
        f"rabbitmqctl delete_queue {names.queue(name)} --if-empty)"
    )


def _changed(
    names: HubNames, old: _Seen, new: Subscriber, observed: Observed, *, counted: bool
) -> Iterator[str]:
    yield from _topics(new.name, old.topics, new.topics)
    if whole_delay(old.delay) != whole_delay(new.delay):
        yield _delay(names, new, old.delay, observed, counted=counted)


def _topics(name: str, old: tuple[str, ...], new: tuple[str, ...]) -> Iterator[str]:
    """What a change of topic patterns means; a pattern the new ones cover is not a loss.

    ``user.*, billing.#`` becoming ``user.#`` reads "receive user.# instead of
    user.* and billing.#", not "no longer receive user.*" (user.# covers it).
    """
    added = [t for t in new if t not in old]
    removed = [t for t in old if t not in new]
    if added and removed:
        yield f"{name} will receive {_listed(added)} instead of {_listed(removed)}"
    elif added:
        yield f"{name} will also receive {_listed(added)}"
    elif removed:
        lost = [t for t in removed if not any(patterns.covers(p, t) for p in new)]
        kept = [t for t in removed if t not in lost]
        if lost:
            yield f"{name} will no longer receive {_listed(lost)}"
        if kept:
            yield (
                f"{name} no longer lists {_listed(kept)}, which its other topics cover: "
                "it receives the same events"
            )


def _delay(
    names: HubNames, sub: Subscriber, was: float | None, observed: Observed, *, counted: bool
) -> str:
    if was is None:
        text = f"{sub.name} will now wait {format_duration(sub.delay or 0)} before each event"
    elif sub.delay is None:
        text = f"{sub.name} will no longer wait: it receives new events at once"
    else:
        text = (
            f"{sub.name}'s delay changes from {format_duration(was)} "
            f"to {format_duration(sub.delay)}"
        )
    if counted:
        text += "".join(_waiting(names, sub, observed))
    return text


def _waiting(names: HubNames, sub: Subscriber, observed: Observed) -> Iterator[str]:
    """``; 12 events already waiting keep 3d`` for each wait queue the change leaves behind."""
    for queue, held in sorted(observed.queues.items()):
        parsed = names.parse_wait_queue(queue)
        if parsed is None or parsed[0] != sub.name or not held.messages:
            continue
        if parsed[1] == whole_delay(sub.delay):
            continue  # the new wait queue: its events wait the new delay
        keep = "keeps" if held.messages == 1 else "keep"
        yield f"; {_events(held.messages)} already waiting {keep} {format_duration(parsed[1])}"


def _unseen(
    old: Subscriber, new: Subscriber, visibility: Callable[[str], Visibility]
) -> Iterator[str]:
    """What only the record shows: handler, settings, retry policy, limits."""
    if old.handler != new.handler:
        was, now = _handler(old.handler), _handler(new.handler)
        yield f"{new.name}'s handler changes from {was} to {now}"
    settings = _differences(_recorded(old, visibility), _recorded(new, visibility))
    if settings:
        yield f"{new.name}'s settings change: {', '.join(settings)}"
    retry = _retry_differences(old.retry, new.retry)
    if retry:
        yield f"{new.name}'s retry policy changes: {', '.join(retry)}"
    for key, label in _LIMITS.items():
        was, now = getattr(old, key), getattr(new, key)
        if was != now:
            yield f"{new.name}'s {label} changes from {_value(key, was)} to {_value(key, now)}"
    if old.idempotent != new.idempotent:
        yield (
            f"{new.name} becomes idempotent: it skips an event it already handled, "
            "redelivered or replayed (its consumers need an inbox: hubbub consume --inbox)"
            if new.idempotent
            else f"{new.name} is no longer idempotent: an event that comes again "
            "(redelivered, replayed) is handled again"
        )


def _recorded(sub: Subscriber, visibility: Callable[[str], Visibility]) -> dict[str, Recorded]:
    """``sub``'s settings as digests and shown texts; its handler is imported only when some
    value is not one already (a record's are)."""
    if all(isinstance(v, Recorded) for v in sub.settings.values()):
        return dict(sub.settings)
    return recorded(sub.settings, visibility(sub.handler))


#: Subscriber keys compared one by one, and how a sentence names them.
_LIMITS = {
    "concurrency": "concurrency (events handled at once)",
    "timeout": "time limit per event",
    "prefetch": "prefetch (events a consumer takes ahead)",
    "delivery_limit": "delivery limit",
}
_DURATION_KEYS = frozenset({"timeout", "backoff", "max_backoff"})


def _differences(old: Mapping[str, Recorded], new: Mapping[str, Recorded]) -> list[str]:
    """``threshold 10 → 20``, ``template added: 'v2'``, ``cc removed (was 'x')``,
    ``headers changed (value not shown)``: values only where they may be shown."""
    out = []
    for key in [*new, *(k for k in old if k not in new)]:
        if key not in old:
            out.append(f"{key} added" + (f": {new[key].shown}" if new[key].shown else ""))
        elif key not in new:
            out.append(f"{key} removed" + (f" (was {old[key].shown})" if old[key].shown else ""))
        elif old[key].digest != new[key].digest:
            out.append(f"{key} {_change(old[key].shown, new[key].shown)}")
    return out


def _change(was: str | None, now: str | None) -> str:
    if was is not None and now is not None and was != now:
        return f"{was} → {now}"
    return f"changed (now {now})" if now is not None else "changed (value not shown)"


def _retry_differences(old: RetryPolicy, new: RetryPolicy) -> list[str]:
    return [
        f"{f.name} {_value(f.name, getattr(old, f.name))} → {_value(f.name, getattr(new, f.name))}"
        for f in fields(RetryPolicy)
        if getattr(old, f.name) != getattr(new, f.name)
    ]


def _value(key: str, value: Any) -> str:
    if key in _DURATION_KEYS and isinstance(value, int | float):
        return format_duration(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _handler(ref: str) -> str:
    module, _, name = ref.partition(":")
    return name if module == "hubbub.actions" and name in BUILTIN_ACTIONS else ref


def _listed(items: Iterable[str]) -> str:
    words = list(items)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _events(n: int) -> str:
    return f"{n} event{'s' if n != 1 else ''}"
