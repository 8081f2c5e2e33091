"""Say which permission the broker refused an admin command, and how to grant it.

RabbitMQ refuses an operation the user has no permission for by closing the
channel with ``403 ACCESS_REFUSED - access to queue 'q' in vhost '/' refused
for user 'u'`` (checked on 3.10.8: the same text for consume, get, publish
and declare, without the kind of permission). The kind follows from what the
command was doing: reading (consuming) a queue needs *read*, publishing to
an exchange needs *write* (``amq.default`` for the default exchange).
Without this translation the refusal read as a lost connection ("run the
command again"), which never helps.

:func:`operator` is the least grant the ``hubbub dlq`` commands need on one
hub: read its dead-letter and unrouted queues (show, list, purge, replay)
and write to the default exchange (replays to a subscriber's queue) and the
hub exchange (replays of unrouted events). A passive declare, which they also
use, needs no permission.
"""

from __future__ import annotations

import re

from hubbub.topology.names import SUBSCRIBER_NAME, HubNames
from hubbub.topology.permissions import NOTHING, Permissions
from hubbub.transport.errors import AccessRefusedError, Permission, access_refused

__all__ = ["AccessRefusedError", "Permission", "operator", "refused"]


def refused(
    reply: str, *, permission: Permission, doing: str, grant: Permissions | None = None
) -> AccessRefusedError | None:
    """The error for a broker reply refusing ``doing``; None when ``reply`` is no refusal.

    ``grant``: a whole grant to suggest (e.g. :func:`operator`); without it
    the fix names only the missing resource.
    """
    plain = access_refused(reply, permission=permission, doing=doing)
    if plain is None or grant is None:
        return plain
    user, vhost = plain.user, plain.vhost
    fix = (
        f"grant it, e.g. {grant.command(user, vhost)} (hubbub dlq's least grant; "
        f"set_permissions replaces the user's grant in that vhost: merge it with "
        f"what rabbitmqctl list_user_permissions {user} shows)"
    )
    return access_refused(reply, permission=permission, doing=doing, fix=fix)


def operator(names: HubNames) -> Permissions:
    """Inspect, replay and purge the parked events of hub ``names`` (``hubbub dlq``)."""
    hub = re.escape(names.hub)
    subscriber = SUBSCRIBER_NAME.pattern[1:-1]
    read = f"^{hub}\\.({subscriber}\\.dlq|unrouted)$"
    write = f"^(amq\\.default|{hub})$"
    return Permissions(NOTHING, write, read)
