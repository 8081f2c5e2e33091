"""Plan and apply a topology against a live broker."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pika

from hubbub.connection import connect, mask
from hubbub.errors import BrokerConnectionError, DeclarationError
from hubbub.topology.declare import declare, remove_bindings
from hubbub.topology.layout import layout
from hubbub.topology.model import Topology
from hubbub.topology.observe import ManagementAPI, observe
from hubbub.topology.plan import Plan, plan

log = logging.getLogger(__name__)


def make_plan(topology: Topology, urls: Sequence[str]) -> Plan:
    """What ``apply`` would change on the broker (needs the management API).

    The nodes of a cluster share one view of exchanges, queues and bindings,
    so the first node whose management API answers is asked: a plan does not
    fail because the first node listed is down.
    """
    error: BrokerConnectionError | None = None
    for url in urls:
        try:
            return plan(layout(topology), observe(ManagementAPI(url), topology.names))
        except BrokerConnectionError as exc:
            error = error or exc
    raise error or BrokerConnectionError("no broker URL given")


def apply(topology: Topology, urls: Sequence[str]) -> Plan | None:
    """Declare ``topology`` and remove the bindings it no longer names.

    Returns the plan that was carried out, or None when the management API
    was unreachable: everything was still declared, but stale bindings could
    not be looked for. Raises DeclarationError, before declaring anything,
    when the plan finds a conflict (e.g. a queue with other arguments), since
    RabbitMQ cannot change it in place.
    """
    # Connect first: a wrong URL, password or vhost is reported as such, not
    # as an unreachable management API.
    connection = connect(urls, name=f"hubbub topology apply {topology.hub}")
    try:
        try:
            _check_same_broker(connection, urls)
            current: Plan | None = make_plan(topology, urls)
        except BrokerConnectionError as exc:
            log.warning("declaring without a plan: %s", exc)
            current = None
        if current is not None and current.conflicts:
            raise DeclarationError(
                f"cannot apply hub {topology.hub!r}: "
                + "; ".join(f"{c.kind} {c.name!r}: {c.detail}" for c in current.conflicts)
            )
        declare(connection, layout(topology))
        if current is not None:
            remove_bindings(connection, current.changes)
    finally:
        if connection.is_open:
            connection.close()
    return current


def _check_same_broker(connection: pika.BlockingConnection, urls: Sequence[str]) -> None:
    """Raise when the management API answering for ``urls`` is another broker's.

    The API's address is derived (host and port 15672), so a broker on a
    non-standard AMQP port may sit beside another whose API answers there; a
    plan from that one would unbind the wrong things.
    """
    props = getattr(connection, "_impl", None)
    amqp = (getattr(props, "server_properties", None) or {}).get("cluster_name")
    amqp = amqp.decode() if isinstance(amqp, bytes) else amqp
    api = ManagementAPI(urls)
    managed = api.get("overview").get("cluster_name")
    if amqp and managed and amqp != managed:
        raise BrokerConnectionError(
            f"the management API at {mask(api.base)} belongs to cluster {managed!r}, not to "
            f"the broker connected over AMQP ({amqp!r}): set HUBBUB_MANAGEMENT_URL"
        )
