"""What a broker session raises: hubbub's errors for a refused or a lost operation.

A broker refuses one operation by closing the channel it ran on, with a
reply code: 404 (no such queue or exchange), 406 (an existing queue or
exchange has other arguments), 403 (the user lacks a permission). A session
translates each into one of the errors below at its edge (``raise ... from``
the client's error), keeping the code and the broker's reply text so a
caller can word its own message; the session itself stays usable. A lost
connection is a :class:`ConnectionLostError`: the session is then dead.
"""

from __future__ import annotations

import re
from typing import Literal, cast

from hubbub.errors import BrokerConnectionError

Permission = Literal["read", "write", "configure"]

#: RabbitMQ 3.10.8 says ``access to queue 'q' ...``; 4.0.5 names the permission
#: (``configure access to queue 'q' ...``). Both checked.
_REFUSED = re.compile(
    r"ACCESS_REFUSED - (?:(?P<said>configure|write|read) )?"
    r"access to (?P<kind>queue|exchange) '(?P<name>[^']*)' "
    r"in vhost '(?P<vhost>[^']*)' refused for user '(?P<user>[^']*)'"
)
_INEQUIVALENT = re.compile(r"inequivalent arg '(?P<arg>[^']+)'")


class RefusedError(BrokerConnectionError):
    """The broker refused one operation (closing only its channel); the session stays usable."""

    def __init__(self, message: str, *, code: int, reply: str) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class NotFoundError(RefusedError):
    """The queue or exchange named does not exist (404 NOT_FOUND)."""


class PreconditionFailedError(RefusedError):
    """The queue or exchange exists with other arguments (406); ``argument`` names the first."""

    def __init__(self, message: str, *, code: int, reply: str) -> None:
        super().__init__(message, code=code, reply=reply)
        match = _INEQUIVALENT.search(reply)
        self.argument: str | None = match["arg"] if match else None


class AccessRefusedError(RefusedError):
    """The broker refused an operation: the user lacks a permission (403 ACCESS_REFUSED)."""

    def __init__(
        self,
        message: str,
        *,
        permission: Permission,
        kind: str,
        name: str,
        vhost: str,
        user: str,
        reply: str = "",
    ) -> None:
        super().__init__(message, code=403, reply=reply)
        self.permission = permission
        self.kind = kind
        self.name = name
        self.vhost = vhost
        self.user = user


class ConnectionLostError(BrokerConnectionError):
    """The connection broke during an operation; the session is closed.

    ``detail``: the client's error, as ``TypeName: text``.
    """

    def __init__(self, message: str, *, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class CopyTargetError(BrokerConnectionError):
    """An exchange a consumer publishes copies to is missing, or its user may not write to it.

    ``missing`` and ``refused`` list the exchanges, so the consumer can word
    the fix (the grant it needs, or applying the topology).
    """

    def __init__(self, message: str, *, missing: list[str], refused: list[str]) -> None:
        super().__init__(message)
        self.missing = missing
        self.refused = refused


def access_refused(
    reply: str, *, permission: Permission, doing: str, fix: str | None = None
) -> AccessRefusedError | None:
    """The error for a broker reply refusing ``doing``; None when ``reply`` is no refusal.

    RabbitMQ 3.x says which resource, not which permission (the same text for
    consume, publish and declare), so the caller names it: reading a queue
    needs *read*, publishing *write*, declaring or deleting *configure*.
    RabbitMQ 4.x names the permission itself, and its word wins.
    ``fix``: what to suggest; by default, adding the resource to that pattern.
    """
    match = _REFUSED.search(reply)
    if match is None:
        return None
    kind, name, vhost, user = match["kind"], match["name"], match["vhost"], match["user"]
    permission = cast(Permission, match["said"] or permission)
    fix = fix or (
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
        reply=reply,
    )


def refusal(code: int, reply: str, *, permission: Permission | None, doing: str) -> RefusedError:
    """The error for the broker refusing ``doing`` with ``code`` and ``reply``."""
    if code == 403 and permission is not None:
        refused = access_refused(reply, permission=permission, doing=doing)
        if refused is not None:
            return refused
    kind = {404: NotFoundError, 406: PreconditionFailedError}.get(code, RefusedError)
    return kind(f"cannot {doing}: the broker said {code} {reply}", code=code, reply=reply)
