"""The pytest plugin's broker fixtures: a vhost per test, cleaned up; the live hub in it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from urllib.parse import unquote, urlsplit

import pytest

from hubbub.errors import BrokerConnectionError
from hubbub.producers import Publisher
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


def test_reading_the_unrouted_queue_keeps_its_order_while_events_arrive(
    hubbub_live_hub, hubbub_vhost_url
):
    # Each read holds the queue unacked and gives it back; an event parked during
    # a read went back ahead of the held ones on RabbitMQ 4.0.5 (issue 17).
    hub = hubbub_live_hub
    hub.subscriber("users", topics=["user.#"])(lambda event: None)
    hub.publish("nobody.listens", {"n": 0})
    stop = threading.Event()
    sent: list[int] = []

    def park_more() -> None:
        with Publisher("events", url=hubbub_vhost_url) as publisher:
            for n in range(1, 200):
                if stop.is_set():
                    return
                publisher.publish("nobody.listens", {"n": n})
                sent.append(n)
                time.sleep(0.005)  # spread the arrivals over many reads

    thread = threading.Thread(target=park_more, daemon=True)
    thread.start()
    try:
        reads = 0
        while thread.is_alive() and reads < 40:
            seen = [e.data["n"] for e in hub.unrouted()]
            assert seen == sorted(seen), f"read {reads} reordered the queue: {seen}"
            reads += 1
    finally:
        stop.set()
        thread.join(30)
    assert reads > 1  # events did arrive while the queue was being read
    assert [e.data["n"] for e in hub.unrouted()] == [0, *sent]
