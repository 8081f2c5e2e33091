"""May a parking queue be browsed without the broker dropping what it returns? (pure)

Browsing holds messages unacked and gives them back by closing its channel
(:mod:`hubbub.admin.browse`). The broker counts each such return against a
quorum queue's delivery limit: RabbitMQ 3.x in ``x-delivery-count`` (seen on
3.10.8 here), 4.0-4.2 in the acquired count, 4.3+ counts a closed channel as
a failed delivery. A dead-letter queue has no dead-letter exchange of its
own, so a message over the limit would be *dropped*. RabbitMQ 4 gives every
quorum queue a limit of 20 unless one is set by argument or policy; hubbub's
layout sets :data:`~hubbub.topology.layout.PARKING_DELIVERY_LIMIT` (2**31-1)
on its parking queues. ``-1`` means unlimited on 4.x but makes 3.10 drop
every message at once, so the advice is a huge limit, valid on both. A
browse is refused when a limit that reads could exhaust applies, or when the
broker is 4.x and no limit setting can be seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A delivery limit at least this high cannot be exhausted by reading.
SAFE_LIMIT = 1_000_000


def delivery_limit_problem(
    queue: str,
    *,
    version: str | None,
    arguments: Mapping[str, Any] | None,
    policy: Mapping[str, Any] | None,
    policy_name: str | None = None,
) -> str | None:
    """Why browsing ``queue`` could lose messages, or None when it cannot.

    ``arguments`` and ``policy`` (its effective definition) are None when the
    management API could not be asked.
    """
    fix = (
        f"Set an unlimited delivery limit on it first, e.g. rabbitmqctl set_policy "
        f"hubbub-dlq '^{queue}$' '{{\"delivery-limit\": 2147483647}}' --apply-to quorum_queues"
    )
    if arguments is not None and "x-delivery-limit" in arguments:
        limit, origin = arguments["x-delivery-limit"], "its x-delivery-limit argument"
    elif policy is not None and "delivery-limit" in policy:
        limit, origin = policy["delivery-limit"], f"policy {policy_name or '?'}"
    else:
        limit, origin = None, ""
    if limit is not None:
        if _int(limit) >= SAFE_LIMIT or (_int(limit) < 0 and major(version) >= 4):
            return None
        return (
            f"queue {queue!r} has a delivery limit of {limit} (from {origin}): reading it "
            "returns its messages to it, which counts as deliveries, so after a few reads "
            f"the broker would drop them. {fix}"
        )
    if major(version) < 4:
        return None
    if arguments is None:
        return (
            f"cannot check queue {queue!r} for a delivery limit without the management API, "
            f"and RabbitMQ {version} gives quorum queues one (20) by default: reading it could "
            f"make the broker drop its messages. Enable the management API, or: {fix}"
        )
    return (
        f"RabbitMQ {version} gives quorum queue {queue!r} a delivery limit of 20 by default: "
        f"reading it returns its messages, which counts against it, so after about 20 reads "
        f"the broker would drop them. {fix}"
    )


def major(version: str | None) -> int:
    """The major number of a broker version (0 when unknown)."""
    head = (version or "").split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
