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
from typing import Literal

from hubbub.errors import BrokerConnectionError
from hubbub.topology.names import SUBSCRIBER_NAME, HubNames
from hubbub.topology.permissions import NOTHING, Permissions

Permission = Literal["read", "write", "configure"]

_REFUSED = re.compile(
    r"ACCESS_REFUSED - access to (?P<kind>queue|exchange) '(?P<name>[^']*)' "
    r"in vhost '(?P<vhost>[^']*)' refused for user '(?P<user>[^']*)'"
)


class AccessRefusedError(BrokerConnectionError):
    """The broker refused an operation: the user lacks a permission (403 ACCESS_REFUSED)."""

    def __init__(
        self, message: str, *, permission: Permission, kind: str, name: str, vhost: str, user: str
    ) -> None:
        super().__init__(message)
        self.permission = permission
        self.kind = kind
        self.name = name
        self.vhost = vhost
        self.user = user


def refused(
    reply: str, *, permission: Permission, doing: str, grant: Permissions | None = None
) -> AccessRefusedError | None:
    """The error for a broker reply refusing ``doing``; None when ``reply`` is no refusal.

    ``grant``: a whole grant to suggest (e.g. :func:`operator`); without it
    the fix names only the missing resource.
    """
    match = _REFUSED.search(reply)
    if match is None:
        return None
    kind, name, vhost, user = match["kind"], match["name"], match["vhost"], match["user"]
    if grant is not None:
        fix = (
            f"grant it, e.g. {grant.command(user, vhost)} (hubbub dlq's least grant; "
            f"set_permissions replaces the user's grant in that vhost: merge it with "
            f"what rabbitmqctl list_user_permissions {user} shows)"
        )
    else:
        fix = (
            f"add {kind} {name!r} to its {permission} pattern (rabbitmqctl "
            f"list_user_permissions {user} shows it, rabbitmqctl set_permissions sets it)"
        )
    return AccessRefusedError(
        f"user {user!r} lacks {permission} permission on {kind} {name!r} in vhost {vhost!r} "
        f"(the broker refused to let it {doing}: 403 ACCESS_REFUSED); {fix}",
        permission=permission,
        kind=kind,
        name=name,
        vhost=vhost,
        user=user,
    )


def operator(names: HubNames) -> Permissions:
    """Inspect, replay and purge the parked events of hub ``names`` (``hubbub dlq``)."""
    hub = re.escape(names.hub)
    subscriber = SUBSCRIBER_NAME.pattern[1:-1]
    read = f"^{hub}\\.({subscriber}\\.dlq|unrouted)$"
    write = f"^(amq\\.default|{hub})$"
    return Permissions(NOTHING, write, read)
