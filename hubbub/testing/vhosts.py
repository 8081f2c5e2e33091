"""A fresh virtual host per test, made and removed through the management API.

Each test that gets one works in a broker namespace of its own (nameko's
pytest plugin does the same): its hub can keep the app's real name, nothing
it declares can collide with another test or run, and deleting the vhost
removes everything it declared, whatever the test left behind.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from hubbub.connection import mask
from hubbub.errors import BrokerConnectionError
from hubbub.testing.broker import unique_name
from hubbub.topology.observe import ManagementAPI


class VhostAdmin(ManagementAPI):
    """Creates and deletes virtual hosts (the URL's user needs the administrator tag)."""

    def create(self, vhost: str, user: str) -> None:
        """Create ``vhost`` and give ``user`` every permission on it."""
        name = quote(vhost, safe="")
        self._send("PUT", f"vhosts/{name}", {"description": "hubbub test"})
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        self._send("PUT", f"permissions/{name}/{quote(user, safe='')}", everything)

    def delete(self, vhost: str) -> None:
        """Delete ``vhost`` and everything in it (a missing one is fine)."""
        self._send("DELETE", f"vhosts/{quote(vhost, safe='')}", None, missing_ok=True)

    def _send(self, method: str, path: str, body: Any, *, missing_ok: bool = False) -> None:
        request = urllib.request.Request(  # noqa: S310 - base is http(s), built by the parent
            f"{self.base}/api/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": self._auth, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30):  # noqa: S310
                return
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                return
            hint = " (the user needs the 'administrator' tag)" if exc.code in (401, 403) else ""
            raise BrokerConnectionError(
                f"the management API at {mask(self.base)} answered {exc.code} to "
                f"{method} /api/{path}{hint}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BrokerConnectionError(
                f"cannot reach the RabbitMQ management API at {mask(self.base)} to make a test "
                "vhost: enable it (rabbitmq-plugins enable rabbitmq_management) or set "
                "HUBBUB_MANAGEMENT_URL"
            ) from exc


def with_vhost(amqp_url: str, vhost: str) -> str:
    """``amqp_url`` pointing at ``vhost`` instead."""
    parts = urlsplit(amqp_url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


@contextmanager
def fresh_vhost(amqp_url: str, *, prefix: str = "hubbub-test") -> Iterator[str]:
    """A new vhost on ``amqp_url``'s broker; yields its URL, deletes it afterwards."""
    admin = VhostAdmin(amqp_url)
    vhost = unique_name(prefix)
    admin.create(vhost, unquote(urlsplit(amqp_url).username or "guest"))
    try:
        yield with_vhost(amqp_url, vhost)
    finally:
        admin.delete(vhost)
