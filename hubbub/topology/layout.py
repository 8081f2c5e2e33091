"""What a topology means on the broker: exchanges, queues and bindings (pure).

Every argument choice below rests on NOTES.md: subscriber queues, dead-letter
queues and ladder levels are quorum queues with at-least-once dead-lettering
(so a broker failure while dead-lettering loses nothing), ``reject-publish``
overflow (required by at-least-once), an explicit delivery limit on
subscriber queues (so a message that keeps crashing its consumer is
dead-lettered, not redelivered forever), and an alternate exchange on every
exchange an event can miss in (so nothing published is ever dropped).

A subscriber with ``delay:`` gets a wait queue (:func:`_wait_queue`) between
the hub and its queue: its topic bindings lead there, and the queue's one
TTL (FIFO-exact, NOTES.md "TTL and delays") dead-letters each event into the
subscriber's wait exchange, a fanout into its queue, with the event's own
routing key and ``CC`` intact. Retries skip it.

The topology's ``replicas`` becomes ``x-quorum-initial-group-size`` on every
one of those quorum queues, the delay ladder's and the wait queues included:
a queue that lived on one node only would lose the events in it with that node.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hubbub.topology import delay
from hubbub.topology.model import Archive, Subscriber, Topology
from hubbub.topology.names import HubNames

#: Delivery limit of dead-letter and unrouted queues: in effect, none.
PARKING_DELIVERY_LIMIT = 2**31 - 1

ExchangeType = Literal["topic", "direct", "fanout"]


def _frozen(arguments: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(arguments.items()))


@dataclass(frozen=True, slots=True)
class Exchange:
    name: str
    type: ExchangeType
    arguments: tuple[tuple[str, Any], ...] = ()

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.arguments)


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    arguments: tuple[tuple[str, Any], ...] = ()

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.arguments)


@dataclass(frozen=True, slots=True)
class Binding:
    source: str
    destination: str
    routing_key: str
    destination_type: Literal["queue", "exchange"] = "queue"

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination_type} {self.destination} [{self.routing_key}]"


@dataclass(frozen=True, slots=True)
class Layout:
    """Everything one hub declares, in declaration order."""

    names: HubNames
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]


def layout(topology: Topology) -> Layout:
    """The broker objects ``topology`` needs; the same input always gives the same output."""
    names = topology.names
    exchanges = [*_core_exchanges(names)]
    exchanges += [_wait_exchange(names, sub) for sub in topology.subscribers]
    exchanges += _ladder_exchanges(names)
    queues = [Queue(names.unrouted, _frozen(_parking()))]
    bindings = [Binding(names.unrouted, names.unrouted, "")]
    for sub in topology.subscribers:
        queues += _subscriber_queues(names, sub)
        bindings += _subscriber_bindings(names, sub)
    queues += _ladder_queues(names)
    bindings += _ladder_bindings(names)
    if topology.archive is not None:
        queues.append(_archive(names, topology.archive))
        bindings += _archive_bindings(names)
    queues = [_replicated(q, topology.replicas) for q in queues]
    return Layout(names, tuple(exchanges), tuple(queues), tuple(bindings))


def _replicated(queue: Queue, replicas: int | None) -> Queue:
    """``queue`` with its number of replicas, when the topology sets one."""
    key = {"quorum": "x-quorum-initial-group-size", "stream": "x-initial-cluster-size"}.get(
        queue.args.get("x-queue-type", "")
    )
    if replicas is None or key is None:
        return queue
    return Queue(queue.name, _frozen({**queue.args, key: replicas}))


def _archive(names: HubNames, archive: Archive) -> Queue:
    """The hub's archive: a stream with the file's retention (see docs/archive.md)."""
    args: dict[str, Any] = {"x-queue-type": "stream"}
    if archive.retention is not None:
        args["x-max-age"] = max_age(archive.retention)
    if archive.max_size is not None:
        args["x-max-length-bytes"] = archive.max_size
    if archive.segment_size is not None:
        args["x-stream-max-segment-size-bytes"] = archive.segment_size
    return Queue(names.archive, _frozen(args))


def max_age(seconds: float) -> str:
    """A retention as ``x-max-age`` takes it (``30D``, ``12h``, ``90s``), rounded up to a second."""
    whole = math.ceil(seconds)
    for unit, size in (("D", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _archive_bindings(names: HubNames) -> list[Binding]:
    """Every event the hub routes, at once or (delayed) when due; never a retry or a
    replay, which are copies aimed at one queue."""
    return [
        Binding(names.exchange, names.archive, "#"),
        Binding(names.delivery, names.archive, delay.delivery_event_pattern("#")),
    ]


def _quorum(**more: Any) -> dict[str, Any]:
    return {"x-queue-type": "quorum", **more}


def _parking() -> dict[str, Any]:
    """A queue where events wait for a person: reading it must never drop them.

    Reading a dead-letter or unrouted queue hands messages back, and a quorum
    queue counts each return as a delivery. RabbitMQ 4.x applies a default
    delivery limit of 20, and these queues have no dead-letter exchange of
    their own, so past it they would *drop* events. The limit is therefore set
    explicitly, as high as the argument goes (``-1`` is no way out: 3.10
    accepts it and drops every message at once).
    """
    return _quorum(**{"x-delivery-limit": PARKING_DELIVERY_LIMIT})


def _dead_letter_into(exchange: str, **more: Any) -> dict[str, Any]:
    return _quorum(
        **{
            "x-dead-letter-exchange": exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
        **more,
    )


def _core_exchanges(names: HubNames) -> Iterator[Exchange]:
    parked = _frozen({"alternate-exchange": names.unrouted})
    yield Exchange(names.unrouted, "fanout")
    yield Exchange(names.exchange, "topic", parked)
    yield Exchange(names.dead_letter_exchange, "direct", parked)
    yield Exchange(names.delivery, "topic", parked)


def wait_seconds(sub: Subscriber) -> int | None:
    """A subscriber's ``delay:`` in whole seconds, rounded up (None: no delay).

    Rounded up, never down, so an event never arrives before the delay the
    file names; the seconds are in the wait queue's name.
    """
    return whole_delay(sub.delay)


def whole_delay(delay: float | None) -> int | None:
    """A ``delay:`` as the broker holds it: whole seconds, rounded up (None: none)."""
    return None if delay is None else math.ceil(delay)


def wait_queue(names: HubNames, sub: Subscriber) -> str | None:
    """The wait queue ``sub``'s events go through, or None when it has no delay."""
    seconds = wait_seconds(sub)
    return None if seconds is None else names.wait_queue(sub.name, seconds)


def _wait_exchange(names: HubNames, sub: Subscriber) -> Exchange:
    """Fanout into ``sub``'s queue, declared for every subscriber.

    Also for one without a delay: a wait queue left by an earlier ``delay:``
    drains into it. The alternate exchange catches what a deleted queue
    would leave unroutable: an at-least-once dead-letter with no route would
    stay stuck at the head of its wait queue (NOTES.md).
    """
    parked = _frozen({"alternate-exchange": names.unrouted})
    return Exchange(names.wait_exchange(sub.name), "fanout", parked)


def _subscriber_queues(names: HubNames, sub: Subscriber) -> list[Queue]:
    args = _dead_letter_into(
        names.dead_letter_exchange,
        **{"x-dead-letter-routing-key": sub.name, "x-delivery-limit": sub.delivery_limit},
    )
    queues = [
        Queue(names.queue(sub.name), _frozen(args)),
        Queue(names.dead_letter_queue(sub.name), _frozen(_parking())),
    ]
    seconds = wait_seconds(sub)
    if seconds is not None:
        queues.append(_wait_queue(names, sub.name, seconds))
    return queues


def _wait_queue(names: HubNames, subscriber: str, seconds: int) -> Queue:
    """Where ``subscriber``'s events wait ``seconds`` before reaching its queue.

    No ``x-dead-letter-routing-key``: an expired event keeps the routing key
    (and ``CC``) it was published with, so the handler sees its topics as if
    it had not waited. No delivery limit: nothing consumes from it.
    """
    args = _dead_letter_into(names.wait_exchange(subscriber), **{"x-message-ttl": seconds * 1000})
    return Queue(names.wait_queue(subscriber, seconds), _frozen(args))


def _subscriber_bindings(names: HubNames, sub: Subscriber) -> list[Binding]:
    queue = names.queue(sub.name)
    entry = wait_queue(names, sub) or queue  # where matching events go first
    result = [Binding(names.exchange, entry, pattern) for pattern in sub.topics]
    result += [Binding(names.delivery, entry, delay.delivery_event_pattern(p)) for p in sub.topics]
    # Retries and replays are aimed at the queue itself: they do not wait the delay again.
    result.append(Binding(names.delivery, queue, delay.delivery_queue_pattern(sub.name)))
    result.append(Binding(names.wait_exchange(sub.name), queue, ""))
    result.append(Binding(names.dead_letter_exchange, names.dead_letter_queue(sub.name), sub.name))
    return result


def _ladder_exchanges(names: HubNames) -> Iterator[Exchange]:
    parked = _frozen({"alternate-exchange": names.unrouted})
    for level in reversed(range(delay.LEVELS)):
        yield Exchange(names.level(level), "topic", parked)


def _next_exchange(names: HubNames, level: int) -> str:
    return names.level(level - 1) if level else names.delivery


def _ladder_queues(names: HubNames) -> Iterator[Queue]:
    for level in reversed(range(delay.LEVELS)):
        args = _dead_letter_into(_next_exchange(names, level), **{"x-message-ttl": 1000 * 2**level})
        yield Queue(names.level(level), _frozen(args))


def _ladder_bindings(names: HubNames) -> Iterator[Binding]:
    for level in reversed(range(delay.LEVELS)):
        exchange = names.level(level)
        yield Binding(exchange, exchange, delay.level_queue_pattern(level))
        yield Binding(
            exchange, _next_exchange(names, level), delay.level_pass_pattern(level), "exchange"
        )
