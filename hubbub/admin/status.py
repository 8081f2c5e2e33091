"""``hubbub status``: the hub's queues at a glance.

Counts come from the RabbitMQ management API (ready, unacked, consumers).
When it cannot be reached they come from AMQP passive declares instead,
which know ready messages and consumers but not unacked ones; the status
then says so (``source``) and leaves unacked as None.

The API can also answer without counts: RabbitMQ 4.x deprecates its
metrics, and with ``deprecated_features.permit.management_metrics_collection
= false`` the queue records keep their names and arguments but lose every
message and consumer count (4.0.5, checked). A queue record without
``messages_ready`` is therefore never read as 0: the names come from the API,
the counts from passive declares, and ``source`` says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from hubbub.admin.sources import subscribers_in
from hubbub.errors import BrokerConnectionError
from hubbub.topology import delay
from hubbub.topology.names import HubNames
from hubbub.topology.observe import ManagementAPI, has_counts, why_uncounted
from hubbub.transport import BrokerSession, open_session

MANAGEMENT = "management API"
_COLUMNS = "name,messages,messages_ready,messages_unacknowledged,consumers"


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """One queue's counts; ``exists`` False when the broker has no such queue."""

    name: str
    exists: bool = True
    ready: int | None = None
    unacked: int | None = None
    consumers: int | None = None

    @property
    def total(self) -> int | None:
        """Ready plus unacked (None when unacked is unknown)."""
        if self.ready is None or self.unacked is None:
            return None
        return self.ready + self.unacked


@dataclass(frozen=True, slots=True)
class SubscriberStatus:
    subscriber: str
    queue: QueueCounts
    dead_letters: QueueCounts


@dataclass(frozen=True, slots=True)
class HubStatus:
    """Everything ``hubbub status`` shows."""

    hub: str
    subscribers: tuple[SubscriberStatus, ...]
    unrouted: QueueCounts
    #: Events waiting in the delay ladder (ready + unacked over its 28 levels).
    delayed: int | None
    #: Where the counts come from: the management API, or AMQP (and why).
    source: str
    #: Events waiting in the subscribers' wait queues (their ``delay:``), old ones
    #: included; None when unknown (without the management API the names are not).
    waiting: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def from_management(
    api: ManagementAPI,
    names: HubNames,
    subscribers: Iterable[str] | None,
    *,
    urls: Sequence[str] = (),
) -> HubStatus:
    """The hub's status read through the management API (raises BrokerConnectionError).

    When the API lists the hub's queues without their counts (see the module
    docstring), the counts are read over AMQP from ``urls`` instead (raises
    BrokerConnectionError when none are given).
    """
    rows = api.get(f"queues/{quote(api.vhost, safe='')}?columns={_COLUMNS}")
    owned = [row for row in rows if names.owns(row["name"], "queue")]
    found = {row["name"]: _counts(row) for row in owned}
    if subscribers is None:
        subscribers = subscribers_in(names, found)
    if any(not has_counts(row) for row in owned):
        why = why_uncounted(api)
        if not urls:
            raise BrokerConnectionError(why)
        return from_amqp(urls, names, subscribers, why=why)
    levels = [found.get(names.level(n)) for n in range(delay.LEVELS)]
    delayed = sum(q.total or 0 for q in levels if q is not None)
    waiting = sum(q.total or 0 for n, q in found.items() if names.parse_wait_queue(n))
    return HubStatus(
        names.hub,
        tuple(
            SubscriberStatus(
                s,
                found.get(names.queue(s)) or QueueCounts(names.queue(s), exists=False),
                found.get(names.dead_letter_queue(s))
                or QueueCounts(names.dead_letter_queue(s), exists=False),
            )
            for s in subscribers
        ),
        found.get(names.unrouted) or QueueCounts(names.unrouted, exists=False),
        delayed,
        MANAGEMENT,
        waiting,
    )


def from_amqp(
    urls: Sequence[str], names: HubNames, subscribers: Iterable[str], *, why: str
) -> HubStatus:
    """The hub's status from passive declares: no unacked counts."""
    session = open_session(urls, name=f"hubbub status {names.hub}")
    try:
        peek = _Peek(session)
        levels = [peek(names.level(n)) for n in range(delay.LEVELS)]
        return HubStatus(
            names.hub,
            tuple(
                SubscriberStatus(s, peek(names.queue(s)), peek(names.dead_letter_queue(s)))
                for s in subscribers
            ),
            peek(names.unrouted),
            sum(q.ready or 0 for q in levels),
            f"AMQP ({why}; unacked counts unknown, delayed counts ready messages only)",
        )
    finally:
        session.close()


class _Peek:
    """Passive declares on one session; a missing queue reads as not existing."""

    def __init__(self, session: BrokerSession) -> None:
        self.session = session

    def __call__(self, queue: str) -> QueueCounts:
        counts = self.session.queue_counts(queue)
        if counts is None:
            return QueueCounts(queue, exists=False)
        return QueueCounts(queue, ready=counts.ready, consumers=counts.consumers)


def _counts(row: Mapping[str, Any]) -> QueueCounts:
    return QueueCounts(
        row["name"],
        ready=int(row.get("messages_ready") or 0),
        unacked=int(row.get("messages_unacknowledged") or 0),
        consumers=int(row.get("consumers") or 0),
    )
