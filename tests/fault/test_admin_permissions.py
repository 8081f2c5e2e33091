"""``hubbub dlq`` and ``status`` name the permission the broker refused, and its grant.

A user and a vhost of the test's own on the shared broker (made and deleted
through the management API, as hubbub.testing.vhosts does): no global
change. The user starts with no permission at all, then gets the read half
of the grant the error suggests, then the whole grant, which must suffice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pika
import pytest
from click.testing import CliRunner

from hubbub.admin import AccessRefusedError, Admin
from hubbub.admin.access import operator
from hubbub.cli.main import cli
from hubbub.testing.broker import unique_name
from hubbub.testing.vhosts import VhostAdmin, with_vhost
from hubbub.topology import apply, loader

pytestmark = pytest.mark.fault


class UserAdmin(VhostAdmin):
    """Users and their permissions, through the management API."""

    def add_user(self, user: str, password: str) -> None:
        self._send("PUT", f"users/{quote(user, safe='')}", {"password": password, "tags": ""})

    def grant(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        path = f"permissions/{quote(vhost, safe='')}/{quote(user, safe='')}"
        self._send("PUT", path, {"configure": configure, "write": write, "read": read})

    def delete_user(self, user: str) -> None:
        self._send("DELETE", f"users/{quote(user, safe='')}", None, missing_ok=True)


@dataclass
class Setup:
    api: UserAdmin
    vhost: str
    user: str
    url: str  # the restricted user's
    admin_url: str  # guest's, in the same vhost


@pytest.fixture
def restricted(broker_url: str) -> Iterator[Setup]:
    api = UserAdmin(broker_url)
    vhost, user = unique_name("hubbub-perm"), unique_name("ops")
    api.create(vhost, "guest")
    api.add_user(user, "pw")
    api.grant(vhost, user, "^$", "^$", "^$")
    host = urlsplit(broker_url)
    url = f"amqp://{user}:pw@{host.hostname}:{host.port or 5672}/{quote(vhost, safe='')}"
    try:
        yield Setup(api, vhost, user, url, with_vhost(broker_url, vhost))
    finally:
        api.delete(vhost)
        api.delete_user(user)


def run(*args: str):
    return CliRunner().invoke(cli, ["--log-level", "ERROR", *args])


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def park(url: str, exchange: str, key: str, count: int) -> list[str]:
    ids = [f"evt-{n}" for n in range(count)]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for event_id in ids:
            props = pika.BasicProperties(message_id=event_id, content_type="application/json")
            channel.basic_publish(exchange, key, json.dumps({"id": event_id}).encode(), props)
    finally:
        connection.close()
    return ids


def test_each_refused_permission_is_named_with_its_grant_and_the_grant_suffices(restricted):
    hub = unique_name("perm")
    topology = loader.from_mapping(
        {"hub": hub, "subscribers": {"billing": {"handler": "x:y", "topics": ["a.#"]}}}
    )
    apply(topology, [restricted.admin_url])
    names = topology.names
    ids = park(restricted.admin_url, names.dead_letter_exchange, "billing", 2)
    user, vhost, url = restricted.user, restricted.vhost, restricted.url
    grant = operator(names)

    for args in (("show",), ("replay", "--all"), ("purge", "--all", "--yes")):
        line = one_line(run("dlq", args[0], "billing", *args[1:], "--hub", hub, "--url", url))
        assert (
            f"user {user!r} lacks read permission on queue {names.dead_letter_queue('billing')!r} "
            f"in vhost {vhost!r}"
        ) in line, args
        assert grant.command(user, vhost) in line and "lost the broker" not in line, args
    with pytest.raises(AccessRefusedError) as refused:
        Admin(topology, url=url).summaries()
    assert (refused.value.permission, refused.value.name) == (
        "read",
        names.dead_letter_queue("billing"),
    )

    status = one_line(run("status", "--hub", hub, "--url", url))
    assert f"refused user {user!r}: it has no management tag" in status
    assert f"rabbitmqctl set_user_tags {user} monitoring" in status

    restricted.api.grant(vhost, user, "^$", "^$", grant.read)  # reads, cannot publish a copy
    line = one_line(run("dlq", "replay", "billing", "--all", "--hub", hub, "--url", url))
    assert f"lacks write permission on exchange 'amq.default' in vhost {vhost!r}" in line
    assert "still parked" in line
    assert [e.id for e in Admin(topology, url=restricted.admin_url).show("billing")] == ids

    restricted.api.grant(vhost, user, grant.configure, grant.write, grant.read)  # as suggested
    done = run("dlq", "replay", "billing", "--all", "--hub", hub, "--url", url)
    assert done.exit_code == 0, done.output
    assert f"2 event(s) replayed to queue {names.queue('billing')}" in done.output
