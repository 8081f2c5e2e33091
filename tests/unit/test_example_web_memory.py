"""The web example (example_app/web.py) tested as an app would test itself: its
endpoints and its async handlers on the plugin's ``memory_hub``, no broker.

Three styles of test, one app: a plain sync test (``run_until_idle`` runs the
async handlers on a private loop), an anyio test and a pytest-asyncio test
(``await arun_until_idle()`` runs them on the test's own loop). The app's
lifespan (``hub.running``) is not entered: the memory hub runs the handlers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from example_app import async_actions, web

TOPOLOGY = Path(web.__file__).with_name("web.yaml")
ALICE = {"user_id": 1, "name": "Alice", "email": "alice@example.com"}


@pytest.fixture
def hubbub_topology():
    """The plugin builds ``memory_hub`` from the web app's topology file."""
    return TOPOLOGY


@pytest.fixture(autouse=True)
def mailbox(monkeypatch):
    monkeypatch.setenv("EXAMPLE_MAIL_LATENCY", "0")
    async_actions.clear()
    yield async_actions.MAILBOX
    async_actions.clear()


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_a_signup_posted_is_welcomed_once_and_the_email_audited(memory_hub, mailbox):
    client = TestClient(web.app)  # no `with`: no lifespan, the memory hub runs the handlers
    response = client.post("/signups", json=ALICE)
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    assert [e.id for e in memory_hub.published("user.signed_up")] == [event_id]

    assert memory_hub.run_until_idle() == 2  # welcome-email, then audit-email

    sent = client.get("/sent").json()
    assert sent["emails"] == [
        {"to": "alice@example.com", "subject": "Welcome, Alice!", "event_id": event_id}
    ]
    (email_sent,) = memory_hub.published("email.sent")
    assert (email_sent.causation_id, email_sent.correlation_id) == (event_id, event_id)
    assert sent["audit"] == [
        {
            "to": "alice@example.com",
            "kind": "welcome",
            "caused_by": event_id,
            "event_id": email_sent.id,
        }
    ]
    assert memory_hub.dead_lettered() == []


@pytest.mark.anyio
async def test_the_endpoint_and_handlers_on_the_tests_own_loop_with_anyio(memory_hub, mailbox):
    transport = httpx2.ASGITransport(app=web.app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://web") as client:
        posted = [
            (await client.post("/signups", json={**ALICE, "user_id": n})).json()["event_id"]
            for n in range(5)
        ]
        assert await memory_hub.arun_until_idle() == 10
        sent = (await client.get("/sent")).json()
    assert sorted(e["event_id"] for e in sent["emails"]) == sorted(posted)
    assert sorted(a["caused_by"] for a in sent["audit"]) == sorted(posted)


@pytest.mark.asyncio
async def test_a_handler_awaits_on_the_tests_loop_with_pytest_asyncio(memory_hub, mailbox):
    """The handler's tasks run on this loop: it may await what the test made on it."""
    gate = asyncio.Event()  # made on the test's loop; the handler waits for it
    loops: list[asyncio.AbstractEventLoop] = []

    async def held_welcome(event):
        loops.append(asyncio.get_running_loop())
        await gate.wait()
        await async_actions.send_welcome_email(event)

    memory_hub.subscriber("held-welcome", topics=["user.signed_up"])(held_welcome)
    event_id = await web.hub.apublish("user.signed_up", ALICE)  # the app's hub: into memory
    running = asyncio.ensure_future(memory_hub.arun_until_idle())
    await asyncio.sleep(0.05)
    assert not running.done()  # held at the gate, the loop still runs this test
    gate.set()
    assert await asyncio.wait_for(running, 10) == 4  # both welcomes, both audits
    assert loops == [asyncio.get_running_loop()]
    assert [e["event_id"] for e in mailbox["emails"]] == [event_id, event_id]


def test_the_web_topology_consumes_async_handlers_with_many_tasks():
    hub = web.hub
    welcome = hub.topology.subscriber("welcome-email")
    assert welcome.concurrency == 200 and welcome.prefetch >= welcome.concurrency
    assert all(asyncio.iscoroutinefunction(h) for h in hub.handlers().values())
