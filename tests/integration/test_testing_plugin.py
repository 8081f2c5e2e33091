"""The pytest plugin's broker fixtures: a vhost per test, cleaned up; the live hub in it."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import unquote, urlsplit

import pytest

from hubbub.errors import BrokerConnectionError
from hubbub.testing import LiveHub
from hubbub.testing.vhosts import VhostAdmin, fresh_vhost

pytestmark = pytest.mark.integration


def vhost_exists(admin: VhostAdmin, vhost: str) -> bool:
    try:
        admin.get(f"vhosts/{vhost}")
    except BrokerConnectionError as exc:
        if "404" in str(exc):
            return False
        raise
    return True


def test_a_fresh_vhost_is_usable_and_deleted_with_what_it_holds(hubbub_broker_url):
    admin = VhostAdmin(hubbub_broker_url)
    with fresh_vhost(hubbub_broker_url) as url:
        vhost = unquote(urlsplit(url).path[1:])
        assert vhost.startswith("hubbub-test-") and vhost_exists(admin, vhost)
        hub = LiveHub("events", url=url)
        hub.subscriber("s", topics=["a.#"])(lambda event: None)
        hub.publish("a.b", {})  # declares the hub's 30-odd queues in the vhost
        hub.close()
    assert not vhost_exists(admin, vhost)


def test_the_live_hub_fixture_runs_in_the_tests_own_vhost(hubbub_live_hub, hubbub_vhost_url):
    assert os.environ["HUBBUB_URL"] == hubbub_vhost_url
    hub = hubbub_live_hub
    got = []
    hub.subscriber("s", topics=["user.*"])(lambda event: got.append(event.data))
    first = hub.publish("user.a", 1)
    second = asyncio.run(hub.apublish("user.b", 2))
    hub.run_until_idle()
    assert got == [1, 2]
    assert [e.id for e in hub.published("user.*")] == [first, second]
    assert [e.id for e in hub.handled("s")] == [first, second]
