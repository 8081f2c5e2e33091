"""Plan, apply and destroy a topology against a live broker."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from hubbub.connection import mask
from hubbub.errors import BrokerConnectionError, DeclarationError, HubbubError
from hubbub.topology.declare import declare, remove_bindings
from hubbub.topology.destroy import DestroyRefusedError, Teardown, teardown
from hubbub.topology.explain import explain
from hubbub.topology.layout import layout
from hubbub.topology.model import Topology
from hubbub.topology.names import HubNames
from hubbub.topology.observe import NO_COUNTS, ManagementAPI, observe, why_uncounted
from hubbub.topology.plan import (
    Observed,
    ObservedExchange,
    ObservedQueue,
    Plan,
    deletable_wait_queues,
    plan,
)
from hubbub.topology.record import QUEUE_ARGUMENTS, Applied, decode, encode
from hubbub.transport import BrokerSession, open_session
from hubbub.transport.errors import RefusedError

log = logging.getLogger(__name__)


def make_plan(topology: Topology, urls: Sequence[str]) -> Plan:
    """What ``apply`` would change on the broker (needs the management API).

    The nodes of a cluster share one view of exchanges, queues and bindings,
    so the first node whose management API answers is asked: a plan does not
    fail because the first node listed is down.
    """
    return plan(layout(topology), _observe(topology, urls))


@dataclass(frozen=True, slots=True)
class Review:
    """A change seen whole: the broker's plan, what it holds, and the last apply's record.

    ``plan`` and ``observed`` are None when the management API could not be
    reached (``apply`` declares all the same); ``applied`` is None when the
    broker holds no record (a hub applied by an older hubbub, or none yet).
    """

    topology: Topology
    plan: Plan | None
    observed: Observed | None
    applied: Applied | None

    def explain(self) -> list[str]:
        """What the change means, in plain words (see :mod:`hubbub.topology.explain`)."""
        previous = self.applied.topology if self.applied is not None else None
        return explain(previous, self.topology, self.observed)


def make_review(topology: Topology, urls: Sequence[str]) -> Review:
    """:func:`make_plan` with what ``plan`` says in plain words: the last apply's record too."""
    observed = _observe(topology, urls)
    session = open_session(urls, name=f"hubbub topology plan {topology.hub}")
    try:
        applied = read_record(session, topology.names)
    finally:
        session.close()
    return Review(topology, plan(layout(topology), observed), observed, applied)


def read_record(session: BrokerSession, names: HubNames) -> Applied | None:
    """The record of the hub's last apply (None: none, or one this hubbub cannot read)."""
    body = session.peek(names.applied)
    return None if body is None else decode(body)


def write_record(session: BrokerSession, names: HubNames, applied: Applied) -> None:
    """Replace the hub's record with ``applied`` (declaring its exchange and queue)."""
    session.declare_exchange(names.applied, "fanout")
    session.declare_queue(names.applied, arguments=QUEUE_ARGUMENTS)
    session.bind_queue(names.applied, names.applied, "")
    session.put(names.applied, encode(applied))


def _observe(topology: Topology, urls: Sequence[str]) -> Observed:
    """What the broker holds of the hub, each queue counted (first management API that answers)."""
    error: BrokerConnectionError | None = None
    for url in urls:
        api = ManagementAPI(url)
        try:
            observed = observe(api, topology.names)
        except BrokerConnectionError as exc:
            error = error or exc
            continue
        return _counted(observed, api, urls, topology.hub)
    raise error or BrokerConnectionError("no broker URL given")


def _counted(observed: Observed, api: ManagementAPI, urls: Sequence[str], hub: str) -> Observed:
    """``observed`` with the queues the API gave no count for counted over AMQP.

    A passive declare knows the ready messages, not those a consumer holds
    unacked; the warning says so.
    """
    if not observed.uncounted:
        return observed
    _say_uncounted(api)
    session = open_session(urls, name=f"hubbub topology plan {hub} (counts)")
    try:
        queues = {
            name: replace(q, messages=_ready(session, name) or 0)
            if name in observed.uncounted
            else q
            for name, q in observed.queues.items()
        }
    finally:
        session.close()
    return replace(observed, queues=queues, uncounted=frozenset())


def apply(topology: Topology, urls: Sequence[str], *, file: str | None = None) -> Plan | None:
    """Declare ``topology`` and remove the bindings it no longer names.

    Returns the plan that was carried out, or None when the management API
    was unreachable: everything was still declared, but stale bindings could
    not be looked for. Raises DeclarationError, before declaring anything,
    when the plan finds a conflict (e.g. a queue with other arguments), since
    RabbitMQ cannot change it in place. See :func:`apply_review`.
    """
    return apply_review(topology, urls, file=file).plan


def apply_review(topology: Topology, urls: Sequence[str], *, file: str | None = None) -> Review:
    """:func:`apply`, returning what it changed as :func:`make_review` saw it beforehand.

    Once declared, the topology is recorded on the broker (``file`` names
    where it came from; None: code), so the next ``plan`` can say what a
    change of settings, retry policy or handler means. A record that cannot
    be written is logged, not raised: the topology is in place.
    """
    # Connect first: a wrong URL, password or vhost is reported as such, not
    # as an unreachable management API.
    session = open_session(urls, name=f"hubbub topology apply {topology.hub}")
    try:
        applied = read_record(session, topology.names)
        observed: Observed | None
        try:
            _check_same_broker(session, urls)
            observed = _observe(topology, urls)
        except BrokerConnectionError as exc:
            log.warning("declaring without a plan: %s", exc)
            observed = None
        current = None if observed is None else plan(layout(topology), observed)
        if current is not None and current.conflicts:
            raise DeclarationError(
                f"cannot apply hub {topology.hub!r}: "
                + "; ".join(f"{c.kind} {c.name!r}: {c.detail}" for c in current.conflicts)
            )
        declare(session, layout(topology))
        if current is not None:
            remove_bindings(session, current.changes)
            _delete_drained(session, deletable_wait_queues(current))
        _record(session, Applied(topology, datetime.now(timezone.utc), file))
    finally:
        session.close()
    return Review(topology, current, observed, applied)


def _record(session: BrokerSession, applied: Applied) -> None:
    try:
        write_record(session, applied.topology.names, applied)
    except HubbubError as exc:
        log.warning(
            "applied, but could not record what was applied (the next plan cannot show "
            "changes to settings, retry policies and handlers): %s",
            exc,
        )


def _delete_drained(session: BrokerSession, queues: Sequence[str]) -> None:
    """Delete the old wait queues the plan found empty and unbound, each counted again first.

    Quorum queues refuse ``queue.delete`` with ``if-empty`` (NOT_IMPLEMENTED
    on 3.10), so the count is taken here: nothing is bound to these queues
    since an earlier apply, so none can fill between the count and the delete.
    One that still holds events (the API's counts lag) is kept for a later apply.
    """
    for name in queues:
        counts = session.queue_counts(name)
        if counts is None:
            continue
        if counts.ready or counts.consumers:
            log.warning(
                "kept old wait queue %s: it holds %d event(s) after all (the management API's "
                "count lags); a later apply deletes it once empty",
                name,
                counts.ready,
            )
            continue
        session.delete_queue(name)
        log.info("deleted old wait queue %s: empty", name)


def _say_uncounted(api: ManagementAPI) -> None:
    """Warn when counts come from AMQP for good (not merely for queues just created)."""
    why = why_uncounted(api)
    level = logging.WARNING if why == NO_COUNTS else logging.DEBUG
    log.log(level, "%s: counting ready messages over AMQP (unacked ones unknown)", why)


def _check_same_broker(session: BrokerSession, urls: Sequence[str]) -> None:
    """Raise when the management API answering for ``urls`` is another broker's.

    The API's address is derived (host and port 15672), so a broker on a
    non-standard AMQP port may sit beside another whose API answers there; a
    plan from that one would unbind the wrong things.
    """
    amqp = session.cluster_name
    api = ManagementAPI(urls)
    managed = api.get("overview").get("cluster_name")
    if amqp and managed and amqp != managed:
        raise BrokerConnectionError(
            f"the management API at {mask(api.base)} belongs to cluster {managed!r}, not to "
            f"the broker connected over AMQP ({amqp!r}): set HUBBUB_MANAGEMENT_URL"
        )


def make_teardown(topology: Topology, urls: Sequence[str]) -> Teardown:
    """What ``destroy`` would delete of ``topology``'s hub, with each queue's messages.

    The management API finds every object of the hub, those the file no
    longer names included; without it, the file's layout is checked name by
    name over AMQP. Either way each queue's ready count is read again by a
    passive declare (the API's counts lag by seconds) and the higher figure
    kept, so a queue that just received an event is not taken for empty.
    """
    session = open_session(urls, name=f"hubbub topology destroy {topology.hub}")
    try:
        try:
            _check_same_broker(session, urls)
            observed = observe(ManagementAPI(urls), topology.names)
        except BrokerConnectionError as exc:
            log.warning("looking for the file's objects only: %s", exc)
            observed = _observe_layout(session, topology)
        if observed.uncounted:
            _say_uncounted(ManagementAPI(urls))
        queues = {
            name: replace(q, messages=max(q.messages, count))
            for name, q in observed.queues.items()
            if (count := _ready(session, name)) is not None
        }
        return teardown(topology.names, replace(observed, queues=queues))
    finally:
        session.close()


def destroy(target: Teardown, urls: Sequence[str], *, force: bool = False) -> Teardown:
    """Delete what ``target`` lists; returns what was deleted.

    Without ``force`` a queue holding events is refused up front
    (:meth:`Teardown.refusal`), and each queue's depth is read again just
    before it is deleted, so one that received an event meanwhile stops the
    destroy, named. (Quorum queues refuse the broker's own ``if-empty``
    delete, so a publish in the instant between the check and the delete
    would still go with the queue: stop the publishers first.)
    """
    if not force and (why := target.refusal()) is not None:
        raise DestroyRefusedError(why)
    session = open_session(urls, name=f"hubbub topology destroy {target.hub}")
    done: list[str] = []
    try:
        for change in target.changes():
            what = f"{change.kind} {change.name!r}"
            if (
                change.kind == "queue"
                and not force
                and change.name != HubNames(target.hub).applied
                and (_ready(session, change.name) or 0) > 0
            ):
                raise DestroyRefusedError(
                    _stopped(target, done, f"{what} received events meanwhile")
                )
            try:
                if change.kind == "queue":
                    session.delete_queue(change.name)
                else:
                    session.delete_exchange(change.name)
            except BrokerConnectionError as exc:
                why = f"{exc.code} {exc.reply}" if isinstance(exc, RefusedError) else str(exc)
                raise DeclarationError(
                    _stopped(target, done, f"the broker refused to delete {what}: {why}")
                ) from exc
            done.append(change.name)
    finally:
        session.close()
    return Teardown(
        target.hub,
        tuple(q for q in target.queues if q[0] in done),
        tuple(e for e in target.exchanges if e in done),
    )


def _stopped(target: Teardown, done: list[str], why: str) -> str:
    return (
        f"stopped destroying hub {target.hub!r}: {why}; removed {len(done)} of "
        f"{len(target.changes())} object(s) so far, the rest stays"
    )


def _observe_layout(session: BrokerSession, topology: Topology) -> Observed:
    """The file's exchanges and queues that exist, by passive declares (no bindings)."""
    wanted = layout(topology)
    exchanges = {e.name: ObservedExchange(e.type, e.args) for e in wanted.exchanges}
    queues = {q.name: ObservedQueue(q.args) for q in wanted.queues}
    return Observed(
        exchanges={n: e for n, e in exchanges.items() if session.exchange_exists(n)},
        queues={n: q for n, q in queues.items() if _ready(session, n) is not None},
    )


def _ready(session: BrokerSession, queue: str) -> int | None:
    """The queue's ready messages, or None when it does not exist."""
    counts = session.queue_counts(queue)
    return None if counts is None else counts.ready
