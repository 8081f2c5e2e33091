"""The console's pure parts and its ASGI app over a stub admin: auth, CSRF, read-only,
response headers, password masking, the reverse-proxy prefix (no broker)."""

from __future__ import annotations

import base64
import functools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from starlette import testclient

from hubbub.admin import AccessRefusedError, PurgeResult, ReplayResult
from hubbub.admin.browse import QueueBusyError
from hubbub.admin.rates import QueueRates
from hubbub.admin.records import FailedEvent
from hubbub.admin.status import HubStatus, QueueCounts, SubscriberStatus
from hubbub.cli.main import cli
from hubbub.console import (
    Auth,
    ConsoleSettings,
    auth_from_env,
    check_bind,
    create_app,
    graph,
    security,
    views,
)
from hubbub.console.service import ConsoleService, Query
from hubbub.console.settings import loopback_host_header
from hubbub.errors import BrokerConnectionError, ConfigurationError
from hubbub.topology import loader
from hubbub.topology.names import HubNames

#: A console without a login answers only to a loopback Host (not "testserver").
TestClient = functools.partial(testclient.TestClient, base_url="http://localhost")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TOKEN = "s3cret-token-123"
SECRET_URL = "amqp://ops:hunter2-pw@broker:5672/%2F"


# -- pure parts --------------------------------------------------------------


def test_credentials_come_from_the_environment_and_every_problem_is_told_at_once():
    assert auth_from_env({}) is None
    assert auth_from_env({"HUBBUB_CONSOLE_TOKEN": TOKEN}) == Auth(token=TOKEN)
    both = {"HUBBUB_CONSOLE_USER": "ops", "HUBBUB_CONSOLE_PASSWORD": "long-enough-pw"}
    assert auth_from_env(both) == Auth(user="ops", password="long-enough-pw")
    with pytest.raises(ConfigurationError) as caught:
        auth_from_env({"HUBBUB_CONSOLE_TOKEN": "short", "HUBBUB_CONSOLE_USER": "ops"})
    text = str(caught.value)
    assert "not both" in text and "go together" in text and "too short" in text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_login(host):
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "no-such-host.invalid"])
def test_anything_beyond_loopback_is_refused_without_login(host):
    with pytest.raises(ConfigurationError, match=r"refusing to listen on .* without auth"):
        check_bind(host, None)
    check_bind(host, Auth(token=TOKEN))


def test_a_session_cookie_cannot_be_forged_or_altered():
    session = security.Session(user="ops")
    cookie = security.sign(session, b"k" * 32)
    assert security.unsign(cookie, b"k" * 32).user == "ops"
    assert security.unsign(cookie, b"other-key" * 4) is None
    _body, mac = cookie.rsplit(".", 1)
    forged = base64.urlsafe_b64encode(b'{"c": "x", "u": "admin"}').decode()
    assert security.unsign(f"{forged}.{mac}", b"k" * 32) is None
    assert security.unsign("garbage", b"k" * 32) is None


def test_a_session_ends_after_its_lifetime_even_if_the_cookie_is_kept():
    session = security.Session(user="ops")
    cookie = security.sign(session, b"k" * 32)
    later = session.issued + security.SESSION_SECONDS
    assert security.unsign(cookie, b"k" * 32, now=later - 1) is not None
    assert security.unsign(cookie, b"k" * 32, now=later + 1) is None


def test_scripts_authenticate_with_bearer_or_basic():
    token, basic = Auth(token=TOKEN), Auth(user="ops", password="long-enough-pw")
    assert security.from_header(token, f"Bearer {TOKEN}") == "token"
    assert security.from_header(token, "Bearer wrong") is None
    good = base64.b64encode(b"ops:long-enough-pw").decode()
    bad = base64.b64encode(b"ops:nope").decode()
    assert security.from_header(basic, f"Basic {good}") == "ops"
    assert security.from_header(basic, f"Basic {bad}") is None
    assert security.from_header(basic, "Basic !!!") is None


@pytest.mark.parametrize(
    ("host", "local"),
    [("localhost:8470", True), ("127.0.0.2", True), ("[::1]:80", True), ("app.localhost", True),
     ("evil.example", False), ("evil.example:8470", False), ("127.0.0.1.nip.io", False),
     ("192.0.2.1", False), ("", False)],
)  # fmt: skip
def test_only_loopback_host_headers_count_as_local(host, local):
    assert loopback_host_header(host) is local


def test_without_a_login_a_request_for_another_host_name_is_refused(admin):
    rebound = testclient.TestClient(app(admin), base_url="http://evil.example:8470")
    refused = rebound.get("/dlq/billing")
    assert refused.status_code == 403 and "answers only to localhost" in refused.text
    assert refused.headers["x-frame-options"] == "DENY"
    assert admin.actions == []
    with_login = testclient.TestClient(
        app(admin, auth=Auth(token=TOKEN)), base_url="http://ops.example"
    )
    page = with_login.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200


def test_the_cli_refuses_to_serve_beyond_loopback_without_a_login(monkeypatch):
    for name in ("HUBBUB_CONSOLE_TOKEN", "HUBBUB_CONSOLE_USER", "HUBBUB_CONSOLE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    refused = CliRunner().invoke(cli, ["console", "--hub", "shop", "--host", "0.0.0.0"])
    assert refused.exit_code == 1
    assert refused.output.startswith("error: refusing to listen on 0.0.0.0 without auth")
    assert len(refused.output.splitlines()) == 1
    monkeypatch.setenv("HUBBUB_CONSOLE_TOKEN", "short")
    bad = CliRunner().invoke(cli, ["console", "--hub", "shop"])
    assert bad.exit_code == 1 and "HUBBUB_CONSOLE_TOKEN is too short" in bad.output
    monkeypatch.setenv("HUBBUB_CONSOLE_TOKEN", TOKEN)
    monkeypatch.setenv("HUBBUB_CONSOLE_SECRET", "abc")
    weak = CliRunner().invoke(cli, ["console", "--hub", "shop"])
    assert weak.exit_code == 1 and "HUBBUB_CONSOLE_SECRET is too short" in weak.output


def test_views_parse_pages_and_mask_urls_in_headers():
    query = views.query_from({"page": "3", "order": "newest", "topic": " user.* "}, size=20)
    assert (query.skip, query.newest_first, query.selection.topic) == (40, True, "user.*")
    assert views.query_from({"page": "x"}, size=5).page == 1
    assert views.header_value(f"from {SECRET_URL}") == "from amqp://ops:***@broker:5672/%2F"
    assert views.header_value(b"\xff") == "\ufffd"


def test_the_topology_picture_links_every_pattern_to_its_subscribers():
    topology = loader.from_mapping(
        {
            "hub": "shop",
            "subscribers": {
                "billing": {"handler": "x:y", "topics": ["order.#"]},
                "audit": {"handler": "x:y", "topics": ["order.#", "user.*"]},
            },
        }
    )
    picture = graph.layout(topology, href="/ops")
    assert [n.label for n in picture.patterns] == ["order.#", "user.*"]
    assert [n.href for n in picture.subscribers] == ["/ops/dlq/billing", "/ops/dlq/audit", None]
    assert len(picture.edges) == 3


# -- the app over a stub admin --------------------------------------------------


class StubAdmin:
    """What ConsoleService uses of Admin, in memory; records the actions asked."""

    def __init__(self, events: list[FailedEvent]) -> None:
        self.names = HubNames("shop")
        self.topology = None
        self.parked = events
        self.actions: list[tuple[str, Any]] = []

    def subscribers(self) -> list[str]:
        return ["billing"]

    def status(self) -> HubStatus:
        queue = QueueCounts("shop.billing", ready=4, unacked=1, consumers=2)
        dead = QueueCounts("shop.billing.dlq", ready=len(self.parked), unacked=0, consumers=0)
        return HubStatus(
            "shop",
            (SubscriberStatus("billing", queue, dead),),
            QueueCounts("shop.unrouted", ready=0, unacked=0, consumers=0),
            0,
            f"management API at {SECRET_URL}",
        )

    def rates(self) -> dict[str, QueueRates]:
        return {"shop.billing": QueueRates(12.0, 11.5)}

    @contextmanager
    def events(self, name: str) -> Iterator[Iterator[FailedEvent]]:
        if name == "broken":
            raise BrokerConnectionError(f"cannot reach {SECRET_URL}")
        if name == "secret":
            raise AccessRefusedError(
                "the broker refused user ops read on queue 'shop.secret.dlq'",
                permission="read", kind="queue", name="shop.secret.dlq", vhost="/", user="ops",
            )  # fmt: skip
        if name == "busy":
            raise QueueBusyError("queue 'shop.busy.dlq' has 1 consumer(s)")
        yield iter(list(self.parked))

    def replay(self, name: str, selection: Any) -> ReplayResult:
        self.actions.append(("replay", selection))
        moved = [e.id for e in self.parked if selection.matches(e)]
        return ReplayResult("queue shop.billing", False, moved=len(moved), ids=moved)

    def purge(self, name: str, selection: Any) -> PurgeResult:
        self.actions.append(("purge", selection))
        return PurgeResult(purged=sum(selection.matches(e) for e in self.parked))


def failed(n: int) -> FailedEvent:
    earlier = {"exception": "TimeoutError", "message": "smtp slow", "replayed_ms": 1}
    return FailedEvent(
        history=(earlier,) if n == 1 else (),
        id=f"e{n}",
        topic="order.created",
        subscriber="billing",
        attempts=3,
        reason="attempts exhausted",
        dead_lettered_by="hubbub",
        exception="ValueError" if n % 2 else "KeyError",
        message=f"failure {n}",
        headers={
            "hubbub-failure-exchange": "shop",
            "origin": SECRET_URL,
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
        body=b'{"n": %d}' % n,
        content_type="application/json",
    )


@pytest.fixture
def admin() -> StubAdmin:
    return StubAdmin([failed(n) for n in range(5)])


def app(admin: StubAdmin, **settings: Any):
    return create_app(ConsoleService(admin), ConsoleSettings(secret=b"k" * 32, **settings))


def token_of(client: TestClient, path: str) -> str:
    found = CSRF.search(client.get(path).text)
    assert found
    return found.group(1)


def test_every_response_carries_the_security_headers(admin):
    client = TestClient(app(admin))
    for path in ("/", "/dlq/billing", "/dlq/billing/events/e1", "/login", "/nope"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src 'self'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store", path
    static = client.get("/static/console.js")
    assert static.status_code == 200 and static.headers["cache-control"] == "max-age=300"
    assert static.headers["x-content-type-options"] == "nosniff"


def test_pages_hold_no_inline_script_or_style(admin):
    client = TestClient(app(admin))
    for path in ("/", "/dlq/billing", "/dlq/billing/events/e1"):
        html = client.get(path).text
        assert "<script>" not in html and "<style" not in html and " style=" not in html
        assert " onclick=" not in html


def test_the_overview_shows_counts_and_rates_and_refreshes_by_script(admin):
    client = TestClient(app(admin, refresh=2.0))
    page = client.get("/").text
    row = page.split('data-subscriber="billing"')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num[^"]*">(?:<a[^>]*>)?([^<]*)<', row)
    assert cells == ["4", "1", "2", "12.0/s", "11.5/s", "5"]
    assert 'data-refresh="/fragment/overview" data-every="2000"' in page
    assert '<script src="/static/console.js" defer></script>' in page


def test_one_event_shows_its_history_and_trace_id(admin):
    page = TestClient(app(admin)).get("/dlq/billing/events/e1").text
    assert 'id="trace">4bf92f3577b34da6a3ce929d0e0e4736<' in page
    assert "TimeoutError" in page and "smtp slow" in page
    assert (
        "None: this is its first failure round"
        in TestClient(app(admin)).get("/dlq/billing/events/e2").text
    )


def test_a_refused_permission_or_a_busy_queue_is_one_line_with_its_own_status(admin):
    client = TestClient(app(admin))
    refused = client.get("/dlq/secret")
    assert refused.status_code == 403
    assert "refused user ops read on queue" in refused.text
    assert client.get("/dlq/busy").status_code == 409
    assert client.get("/dlq/broken").status_code == 502


def test_no_broker_password_reaches_a_page(admin):
    client = TestClient(app(admin))
    for path in ("/", "/fragment/overview", "/dlq/billing/events/e1", "/dlq/broken"):
        text = client.get(path).text
        assert "hunter2" not in text, path
    assert "amqp://ops:***@broker" in client.get("/dlq/broken").text


def test_masking_a_page_stays_fast_with_a_large_event():
    big = FailedEvent(
        id="big", topic="t.x", subscriber="billing", attempts=1, reason="r",
        dead_lettered_by="hubbub", content_type="application/json",
        body=('{"blob": "' + "x" * 300_000 + f'", "dsn": "{SECRET_URL}"}}').encode(),
    )  # fmt: skip
    client = TestClient(app(StubAdmin([big])))
    started = time.perf_counter()
    page = client.get("/dlq/billing/events/big")
    assert time.perf_counter() - started < 3.0
    assert "amqp://ops:***@broker" in page.text and "hunter2" not in page.text


def test_a_post_without_the_sessions_form_token_is_refused(admin):
    client = TestClient(app(admin))
    token = token_of(client, "/dlq/billing")
    assert client.post("/dlq/billing/replay", data={"id": "e1"}).status_code == 403
    assert client.post("/dlq/billing/replay", data={"id": "e1", "csrf": "x"}).status_code == 403
    other = TestClient(app(admin))  # another browser: its own session, its own token
    other.get("/")
    assert other.post("/dlq/billing/replay", data={"id": "e1", "csrf": token}).status_code == 403
    assert admin.actions == []
    done = client.post("/dlq/billing/replay", data={"id": "e1", "csrf": token})
    assert done.status_code == 200 and "replayed 1 event(s)" in done.text
    assert [kind for kind, _ in admin.actions] == ["replay"]


def test_read_only_shows_no_action_and_refuses_every_one(admin):
    client = TestClient(app(admin, read_only=True))
    page = client.get("/dlq/billing/events/e1").text
    assert "Replay the edited copy" not in page and "read-only" in page
    token = CSRF.search(client.get("/").text)
    assert token is None  # no action form at all, not even log out (no login)
    session_token = security.unsign(client.cookies["hubbub_console"], b"k" * 32).csrf
    for path in ("/dlq/billing/replay", "/dlq/billing/purge", "/dlq/billing/events/e1/edit"):
        refused = client.post(path, data={"csrf": session_token, "scope": "filter",
                                          "confirm": "billing", "data": "{}"})  # fmt: skip
        assert refused.status_code == 403 and "read-only" in refused.text
    assert admin.actions == []


def test_with_a_token_every_page_needs_the_login(admin):
    client = TestClient(app(admin, auth=Auth(token=TOKEN)))
    first = client.get("/dlq/billing?order=newest", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=%2Fdlq%2Fbilling%3Forder%3Dnewest"
    assert client.get("/fragment/overview", follow_redirects=False).status_code == 303
    assert client.post("/dlq/billing/purge", data={"scope": "filter"}).status_code == 401
    assert client.get("/healthz").text == "ok"
    login = client.get("/login").text
    token = CSRF.search(login).group(1)
    wrong = client.post("/login", data={"csrf": token, "password": "nope"})
    assert wrong.status_code == 401 and "wrong credentials" in wrong.text
    stale = client.post("/login", data={"csrf": "x", "password": TOKEN})
    assert stale.status_code == 401
    right = client.post(
        "/login?next=/dlq/billing", data={"csrf": token, "password": TOKEN}, follow_redirects=False
    )
    assert right.status_code == 303 and right.headers["location"] == "/dlq/billing"
    page = client.get("/dlq/billing")
    assert page.status_code == 200 and "e1" in page.text
    cookie = page.request.headers["cookie"]
    assert "hubbub_console=" in cookie
    new_token = CSRF.search(page.text).group(1)
    assert new_token != token  # the login gave the session a new form token
    client.post("/logout", data={"csrf": new_token})
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_login_cookie_is_http_only_and_same_site_strict(admin):
    client = TestClient(app(admin, auth=Auth(user="ops", password="long-enough-pw")))
    token = token_of(client, "/login")
    done = client.post(
        "/login",
        data={"csrf": token, "user": "ops", "password": "long-enough-pw"},
        follow_redirects=False,
    )
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_the_login_never_redirects_to_another_site(admin):
    client = TestClient(app(admin, auth=Auth(token=TOKEN)))
    for target in ("//evil.example/x", "/\\evil.example/x", "https://evil.example/"):
        token = token_of(client, "/login")  # each login gives the session a new token
        done = client.post(
            "/login?" + urlencode({"next": target}),
            data={"csrf": token, "password": TOKEN},
            follow_redirects=False,
        )
        assert done.headers["location"] == "/", target


def test_scripts_may_read_with_a_bearer_token(admin):
    client = TestClient(app(admin, auth=Auth(token=TOKEN)))
    page = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200 and "billing" in page.text
    assert client.get("/", headers={"Authorization": "Bearer no"}, follow_redirects=False)\
        .status_code == 303  # fmt: skip


def test_behind_a_proxy_every_link_carries_the_root_path(admin):
    client = TestClient(app(admin, auth=Auth(token=TOKEN)), root_path="/ops/hubbub")
    first = client.get("/ops/hubbub/", follow_redirects=False)
    assert first.headers["location"].startswith("/ops/hubbub/login?next=")
    page = client.get("/ops/hubbub/login")
    assert 'href="/ops/hubbub/static/console.css"' in page.text
    assert 'action="/ops/hubbub/login?next=' in page.text


def test_a_long_notice_is_cut_so_the_session_cookie_stays_small(admin):
    client = TestClient(app(admin))
    token = token_of(client, "/dlq/billing")
    done = client.post(
        "/dlq/billing/replay", data={"csrf": token, "scope": "filter", "text": "x" * 10_000}
    )
    assert "nothing to replay" in done.text and "…" in done.text
    assert all(len(c) < 2000 for c in done.history[0].headers.get_list("set-cookie"))


def test_purge_needs_the_name_typed_and_replay_needs_a_tick_or_the_filter_scope(admin):
    client = TestClient(app(admin))
    token = token_of(client, "/dlq/billing")
    nothing = client.post("/dlq/billing/replay", data={"csrf": token})
    assert nothing.status_code == 400 and "no event ticked" in nothing.text
    untyped = client.post("/dlq/billing/purge", data={"csrf": token, "scope": "filter"})
    assert "nothing deleted" in untyped.text and admin.actions == []
    typed = client.post(
        "/dlq/billing/purge",
        data={"csrf": token, "scope": "filter", "exception": "KeyError", "confirm": "billing"},
    )
    assert "deleted 3 event(s)" in typed.text


def test_a_page_of_dead_letters_is_answered_oldest_or_newest_first_with_groups(admin):
    service = ConsoleService(admin)
    oldest = service.page("billing", Query(size=2))
    assert [e.id for e in oldest.events] == ["e0", "e1"]
    newest = service.page("billing", Query(newest_first=True, size=2, page=2))
    assert [e.id for e in newest.events] == ["e2", "e1"] and newest.complete
    assert newest.matched == 5
    tally = service.tally("billing")
    assert tally is not None and dict(tally.groups) == {"KeyError": 3, "ValueError": 2}
    assert service.event("billing", "e3") is not None
    assert service.event("billing", "nope") is None
