"""Read what the broker holds of a hub, through the RabbitMQ management API.

AMQP cannot list bindings or read a queue's arguments, so ``plan`` needs the
``rabbitmq_management`` plugin. Its address is derived from the broker URL
(same host and credentials, port 15672; ``https`` and 15671 for ``amqps``)
unless ``HUBBUB_MANAGEMENT_URL`` names it.

RabbitMQ 4.x deprecates the API's metrics: with
``deprecated_features.permit.management_metrics_collection = false`` its
queue records keep names and arguments but carry no message or consumer
counts, and ``/api/consumers`` answers 400 (4.0.5, checked). Such a record is
never read as an empty queue: :func:`observe` lists it in
:attr:`Observed.uncounted` and its callers count it over AMQP.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from hubbub.connection import mask, vhost_of
from hubbub.errors import BrokerConnectionError
from hubbub.topology.layout import Binding
from hubbub.topology.names import HubNames
from hubbub.topology.plan import Observed, ObservedExchange, ObservedQueue

#: Why counts come from AMQP when the API keeps no metrics at all.
NO_COUNTS = (
    "the management API keeps no metrics (RabbitMQ 4 with "
    "management_metrics_collection off, or management.disable_stats)"
)
#: Why counts come from AMQP when the API has not counted new queues yet.
NOT_YET_COUNTED = "the management API has not counted queues just created yet"


def has_counts(record: Any) -> bool:
    """True when a management API queue record carries its message counts.

    Records lack them when the API keeps no metrics, and for a few seconds
    after a queue is created (until the next statistics round).
    """
    return "messages_ready" in record or "messages" in record


def why_uncounted(api: ManagementAPI) -> str:
    """Why queue records lack counts: :data:`NO_COUNTS` (lasting) or :data:`NOT_YET_COUNTED`.

    The overview's ``disable_stats`` is true when the API keeps no metrics
    (checked on RabbitMQ 4.0.5 with the deprecated feature denied).
    """
    return NO_COUNTS if api.get("overview").get("disable_stats") else NOT_YET_COUNTED


class ManagementAPI:
    """A minimal client for the few management endpoints hubbub reads.

    Given several broker URLs (the nodes of a cluster, which share one view
    of exchanges, queues and bindings), a request that cannot reach a node
    goes to the next one, and the node that answered is asked first next time.
    """

    def __init__(self, amqp_url: str | Sequence[str], *, management_url: str | None = None) -> None:
        urls = [amqp_url] if isinstance(amqp_url, str) else list(amqp_url)
        self.vhost = vhost_of(urls[0])
        override = management_url or os.environ.get("HUBBUB_MANAGEMENT_URL")
        self._targets = [_target(url, override) for url in (urls[:1] if override else urls)]
        self._current = 0

    @property
    def base(self) -> str:
        """Where requests go now (``http(s)://host:port``, credentials apart)."""
        return self._targets[self._current][0]

    @property
    def _auth(self) -> str:
        return self._targets[self._current][1]

    def get(self, path: str) -> Any:
        """GET ``/api/<path>`` and decode the JSON, translating failures."""
        for step in range(len(self._targets)):
            index = (self._current + step) % len(self._targets)
            try:
                result = self._get(*self._targets[index], path)
            except _Unreachable as exc:
                if step == len(self._targets) - 1:
                    raise BrokerConnectionError(str(exc)) from exc.__cause__
                continue
            self._current = index
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _get(base: str, auth: str, path: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - base is http(s), built above
            f"{base}/api/{path}", headers={"Authorization": auth}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise BrokerConnectionError(_refusal(base, auth, path, exc)) from exc
            raise BrokerConnectionError(
                f"the management API at {mask(base)} answered {exc.code} for /api/{path}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise _Unreachable(
                f"cannot reach the RabbitMQ management API at {mask(base)}: enable it "
                "(rabbitmq-plugins enable rabbitmq_management) or set HUBBUB_MANAGEMENT_URL"
            ) from exc

    def in_vhost(self, what: str) -> Any:
        """GET ``/api/<what>/<vhost>``; a missing virtual host is named as such."""
        try:
            return self.get(f"{what}/{quote(self.vhost, safe='')}")
        except BrokerConnectionError as exc:
            cause = exc.__cause__
            if isinstance(cause, urllib.error.HTTPError) and cause.code == 404:
                raise BrokerConnectionError(
                    f"virtual host {self.vhost!r} does not exist on the broker at "
                    f"{mask(self.base)}: create it (rabbitmqctl add_vhost {self.vhost}) "
                    "or fix the URL"
                ) from cause
            raise


def _refusal(base: str, auth: str, path: str, exc: urllib.error.HTTPError) -> str:
    """Why the management API answered 401, from the reason in its body.

    RabbitMQ 3.10 answers 401 for wrong credentials ("Login failed"), for a
    user without a management tag ("Not management user") and for a user
    without access to the virtual host; only the first is a credentials
    problem.
    """
    try:
        reason = str(json.loads(exc.read() or b"{}").get("reason") or "")
    except (ValueError, OSError, AttributeError):
        reason = ""
    user = _user(auth)
    where = f"the management API at {mask(base)}"
    if reason == "Not management user":
        return (
            f"{where} refused user {user!r}: it has no management tag, which the API needs "
            f"(rabbitmqctl set_user_tags {user} monitoring)"
        )
    if "virtual host" in reason:
        vhost = unquote(path.split("/")[1].split("?")[0]) if "/" in path else "?"
        return (
            f"{where} refused user {user!r} access to virtual host {vhost!r}: "
            f"rabbitmqctl set_permissions -p {vhost} {user} ... gives it some"
        )
    return f"{where} refused the credentials"


def _user(auth: str) -> str:
    """The user name in a Basic ``Authorization`` header."""
    try:
        return base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return "?"


class _Unreachable(Exception):  # noqa: N818 - internal signal: try the next node
    pass


def _target(amqp_url: str, override: str | None) -> tuple[str, str]:
    """``(base, Authorization header)`` of one node's management API."""
    parts = urlsplit(amqp_url)
    base = override
    if not base:
        scheme, port = ("https", 15671) if parts.scheme == "amqps" else ("http", 15672)
        base = f"{scheme}://{parts.hostname}:{port}"
    user = unquote(parts.username or "guest")
    password = unquote(parts.password or "guest")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return base.rstrip("/"), f"Basic {token}"


def observe(api: ManagementAPI, names: HubNames) -> Observed:
    """The exchanges, queues and bindings on the broker that belong to ``names``' hub."""
    exchanges = {
        e["name"]: ObservedExchange(e["type"], e.get("arguments") or {}, e.get("durable", True))
        for e in api.in_vhost("exchanges")
        if names.owns(e["name"], "exchange")
    }
    records = [q for q in api.in_vhost("queues") if names.owns(q["name"], "queue")]
    queues = {
        q["name"]: ObservedQueue(
            q.get("arguments") or {}, int(q.get("messages") or 0), q.get("durable", True)
        )
        for q in records
    }
    bindings = frozenset(
        Binding(b["source"], b["destination"], b["routing_key"], b["destination_type"])
        for b in api.in_vhost("bindings")
        if b["source"]
        and names.owns(b["source"], "exchange")
        and names.owns(b["destination"], b["destination_type"])
    )
    uncounted = frozenset(q["name"] for q in records if not has_counts(q))
    return Observed(exchanges, queues, bindings, uncounted)
