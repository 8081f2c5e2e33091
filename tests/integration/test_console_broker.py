"""``hubbub console`` against the real broker: pages read the queues, forms act on them."""

from __future__ import annotations

import functools
import logging
import re
import time

import pytest
from dlq_support import Failure, ids_in, park, read
from starlette import testclient

from hubbub.admin import Admin
from hubbub.admin.edit import EDITED
from hubbub.console import ConsoleSettings, create_app
from hubbub.console.service import ConsoleService

pytestmark = pytest.mark.integration

ORDER = {"order_id": 7, "email": "alice@exmaple.com"}
#: A console without a login answers only to a loopback Host (not "testserver").
TestClient = functools.partial(testclient.TestClient, base_url="http://localhost")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def spec(hub: str) -> dict:
    subs = {
        "billing": {"handler": "x:y", "topics": ["order.#"], "retry": {"attempts": 4}},
        "audit": {"handler": "x:y", "topics": ["order.created", "user.*"]},
    }
    return {"hub": hub, "subscribers": subs}


@pytest.fixture
def parked(declare, hub_name, broker_url):
    topology = declare(spec(hub_name))
    failures = [
        Failure("order.created", ORDER, ValueError("bad email"), ago=600),
        Failure("order.paid", {"order_id": 8}, KeyError("card"), ago=300),
        Failure("order.created", {"order_id": 9}, ValueError("bad zip"), ago=60),
    ]
    return topology, park(broker_url, topology, "billing", failures)


@pytest.fixture
def client(parked, broker_url):
    topology, _ = parked
    service = ConsoleService(Admin(topology, url=broker_url))
    with TestClient(create_app(service, ConsoleSettings())) as client:
        yield client


def csrf(client: TestClient, path: str) -> str:
    found = CSRF.search(client.get(path).text)
    assert found
    return found.group(1)


def test_the_overview_shows_counts_topics_retry_policy_and_no_password(client, parked):
    deadline = time.monotonic() + 20  # the management API refreshes its counts every ~5 s
    while True:
        page = client.get("/")
        assert page.status_code == 200
        html = page.text
        row = html.split('data-subscriber="billing"')[1].split("</tr>")[0]
        if 'data-dead-letters="billing">3<' in row or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert 'data-dead-letters="billing">3<' in row
    assert "order.#" in row and "4 attempts" in row
    assert 'id="unrouted-count"' in html and 'id="delayed"' in html
    assert "guest:guest" not in html and ":guest@" not in html
    fragment = client.get("/fragment/overview")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-subscriber="audit"' in fragment.text


def test_dead_letters_are_paged_filtered_ordered_and_grouped(client, parked):
    _, ids = parked
    page = client.get("/dlq/billing").text
    assert [i for i in ids if i[:16] in page] == ids
    assert page.index(ids[0][:16]) < page.index(ids[2][:16])  # oldest first
    newest = client.get("/dlq/billing?order=newest").text
    assert newest.index(ids[2][:16]) < newest.index(ids[0][:16])
    only = client.get("/dlq/billing?exception=ValueError&text=zip").text
    assert ids[2][:16] in only and ids[0][:16] not in only and ids[1][:16] not in only
    recent = client.get("/dlq/billing?since=8m").text
    assert ids[0][:16] not in recent and ids[1][:16] in recent
    groups = client.get("/dlq/billing/groups").text
    assert re.search(r'data-group="ValueError">.*?>2<', groups, re.S)
    assert re.search(r'data-group="KeyError">.*?>1<', groups, re.S)
    bad = client.get("/dlq/billing?topic=order..x")
    assert bad.status_code == 400 and "--topic" in bad.text


def test_one_event_shows_data_record_traceback_and_headers(client, parked):
    _, ids = parked
    page = client.get(f"/dlq/billing/events/{ids[0]}")
    assert page.status_code == 200
    assert "&#34;email&#34;: &#34;alice@exmaple.com&#34;" in page.text
    assert "ValueError" in page.text and "Traceback" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/dlq/billing/events/nope").status_code == 404


def test_replay_selected_and_a_group_moves_them_to_the_subscriber_queue(
    client, parked, broker_url, caplog
):
    topology, ids = parked
    token = csrf(client, "/dlq/billing")
    with caplog.at_level(logging.INFO, logger="hubbub.console"):
        done = client.post("/dlq/billing/replay", data={"csrf": token, "id": [ids[1]]})
    assert done.status_code == 200  # followed the redirect
    assert "replayed 1 event(s) to queue" in done.text
    assert any("anonymous@testclient replayed 1 event(s) of billing" in r.message
               for r in caplog.records)  # fmt: skip
    assert ids_in(broker_url, topology.names.queue("billing")) == [ids[1]]
    group = client.post(
        "/dlq/billing/replay",
        data={"csrf": token, "scope": "filter", "exception": "ValueError"},
    )
    assert "replayed 2 event(s)" in group.text
    assert ids_in(broker_url, topology.names.dead_letter_queue("billing")) == []
    again = client.post(
        "/dlq/billing/replay", data={"csrf": token, "scope": "filter", "exception": "ValueError"}
    )
    assert "nothing to replay" in again.text


def test_edit_replays_the_edited_copy_and_removes_the_original(client, parked, broker_url):
    topology, ids = parked
    token = csrf(client, f"/dlq/billing/events/{ids[0]}")
    done = client.post(
        f"/dlq/billing/events/{ids[0]}/edit",
        data={"csrf": token, "data": '{"order_id": 7, "email": "alice@example.com"}'},
    )
    assert "replayed an edited copy" in done.text
    [(message_id, headers, body)] = read(broker_url, topology.names.queue("billing"))
    assert message_id == ids[0] and EDITED in headers
    assert b"alice@example.com" in body
    assert ids[0] not in ids_in(broker_url, topology.names.dead_letter_queue("billing"))
    bad = client.post(f"/dlq/billing/events/{ids[1]}/edit", data={"csrf": token, "data": "{"})
    assert bad.status_code == 400 and "not valid JSON" in bad.text


def test_purge_needs_the_typed_confirmation(client, parked, broker_url):
    topology, ids = parked
    dlq = topology.names.dead_letter_queue("billing")
    token = csrf(client, "/dlq/billing")
    refused = client.post(
        "/dlq/billing/purge", data={"csrf": token, "scope": "filter", "confirm": "yes"}
    )
    assert "nothing deleted: type billing in the confirmation box" in refused.text
    assert len(ids_in(broker_url, dlq)) == 3
    one = client.post(
        "/dlq/billing/purge", data={"csrf": token, "id": ids[0], "confirm": "billing"}
    )
    assert "deleted 1 event(s)" in one.text
    rest = client.post(
        "/dlq/billing/purge", data={"csrf": token, "scope": "filter", "confirm": "billing"}
    )
    assert "deleted 2 event(s)" in rest.text
    assert ids_in(broker_url, dlq) == []


def test_actions_without_the_form_token_or_in_read_only_mode_change_nothing(parked, broker_url):
    topology, _ids = parked
    dlq = topology.names.dead_letter_queue("billing")
    service = ConsoleService(Admin(topology, url=broker_url))
    with TestClient(create_app(service, ConsoleSettings())) as client:
        client.get("/")
        forged = client.post("/dlq/billing/purge", data={"scope": "filter", "confirm": "billing"})
        assert forged.status_code == 403
        wrong = client.post(
            "/dlq/billing/purge",
            data={"csrf": "x" * 43, "scope": "filter", "confirm": "billing"},
        )
        assert wrong.status_code == 403
    with TestClient(create_app(service, ConsoleSettings(read_only=True))) as client:
        page = client.get("/dlq/billing")
        assert "Replay ticked" not in page.text and "Delete all" not in page.text
        token = CSRF.search(page.text).group(1)
        refused = client.post(
            "/dlq/billing/purge", data={"csrf": token, "scope": "filter", "confirm": "billing"}
        )
        assert refused.status_code == 403 and "read-only" in refused.text
    assert len(ids_in(broker_url, dlq)) == 3


def test_unrouted_events_are_listed_and_replayed_once_a_subscriber_matches(
    client, parked, broker_url
):
    topology, _ = parked
    from hubbub.producers import Publisher

    with Publisher(topology.hub, url=broker_url) as publisher:
        publisher.publish("invoice.sent", {"n": 1})
        publisher.publish("user.created", {"n": 2})
    unrouted = client.get("/dlq/unrouted").text
    assert "invoice.sent" in unrouted
    token = csrf(client, "/dlq/unrouted")
    done = client.post("/dlq/unrouted/replay", data={"csrf": token, "scope": "filter"})
    assert "nothing to replay" in done.text or "left 1 event(s) in place" in done.text
    assert "no subscriber for invoice.sent" in done.text
    groups = client.get("/dlq/unrouted/groups").text
    assert 'data-group="invoice.sent"' in groups
    gone = client.post(
        "/dlq/unrouted/purge",
        data={"csrf": token, "scope": "filter", "topic": "invoice.*", "confirm": "unrouted"},
    )
    assert "deleted 1 event(s) of unrouted" in gone.text
    assert ids_in(broker_url, topology.names.unrouted) == []


def test_publish_rates_come_from_the_management_api(parked, broker_url):
    topology, _ = parked
    admin = Admin(topology, url=broker_url)
    queue = topology.names.queue("billing")
    deadline = time.monotonic() + 30  # the API samples rates every ~5 s
    from hubbub.producers import Publisher

    with Publisher(topology.hub, url=broker_url) as publisher:
        while (rate := admin.rates().get(queue)) is None or rate.publish == 0:
            assert time.monotonic() < deadline, rate
            for n in range(50):
                publisher.publish("order.created", {"n": n})
            time.sleep(0.2)
    assert rate.publish > 0 and rate.deliver == 0  # no consumer
    assert topology.names.unrouted not in {q for q, r in admin.rates().items() if r.publish}
