"""How fast events flow through a hub's queues: publish and deliver rates (pure + one read).

The management API keeps, per queue, message rates averaged over its
sample window (5 s by default): ``publish`` (messages entering the queue)
and ``deliver_get`` (messages handed to consumers). AMQP has no such
counters, so without the management API there are no rates (an empty
mapping), never an error: rates decorate the status, they are not needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hubbub.errors import BrokerConnectionError
from hubbub.topology.names import HubNames
from hubbub.topology.observe import ManagementAPI

log = logging.getLogger(__name__)

_COLUMNS = "name,message_stats.publish_details.rate,message_stats.deliver_get_details.rate"


@dataclass(frozen=True, slots=True)
class QueueRates:
    """Messages per second into (``publish``) and out of (``deliver``) one queue."""

    publish: float = 0.0
    deliver: float = 0.0


def parse(rows: Iterable[Mapping[str, Any]], names: HubNames) -> dict[str, QueueRates]:
    """The rates of the hub's queues in a management API answer (a queue with no
    traffic yet has no ``message_stats``: it reads as zero)."""
    result = {}
    for row in rows:
        name = row.get("name")
        if not isinstance(name, str) or not names.owns(name, "queue"):
            continue
        stats = row.get("message_stats") or {}
        result[name] = QueueRates(
            _rate(stats.get("publish_details")), _rate(stats.get("deliver_get_details"))
        )
    return result


def from_management(api: ManagementAPI, names: HubNames) -> dict[str, QueueRates]:
    """Rates per queue name; empty when the management API cannot be reached."""
    try:
        rows = api.get(f"queues/{quote(api.vhost, safe='')}?columns={_COLUMNS}")
    except BrokerConnectionError as exc:
        log.debug("no rates for hub %s: %s", names.hub, exc)
        return {}
    return parse(rows, names)


def _rate(details: Any) -> float:
    if not isinstance(details, Mapping):
        return 0.0
    value = details.get("rate")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
