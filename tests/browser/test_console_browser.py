"""End to end in Debian's Chromium: the console finds, edits, replays and purges failures.

A real worker dead-letters three events; an operator's browser does the rest.
Runtime about 15 s.
"""

from __future__ import annotations

import pika
import pytest
from browser_support import chromium, non_loopback_address, screenshot, serving
from click.testing import CliRunner
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from hubbub.admin import Admin
from hubbub.admin.browse import Browser
from hubbub.cli.main import cli
from hubbub.console import Auth, ConsoleSettings, create_app
from hubbub.console.service import ConsoleService
from hubbub.producers import Publisher

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TOKEN = "browser-test-token-1"


class Signups:
    """The subscriber's handler: fails on an address without '@', records the others."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, dict]] = []

    def __call__(self, event) -> None:
        if "@" not in event.data["email"]:
            raise ValueError(f"bad email {event.data['email']!r}")
        self.handled.append((event.id, event.data))


def parked_ids(url: str, queue: str) -> list[str | None]:
    with Browser([url], queue) as browser:
        return [m.message.message_id for m in browser.messages()]


def ready(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def wait(driver, seconds: float = 20) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def submit(driver, button: str) -> str:
    """Click the form button with id ``button``; the notice on the page it leads to."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, button).click()
    wait(driver).until(_left(page))  # not the notice of the page we left
    # The POST answers with a redirect: a notice found while that document is
    # being replaced belongs to no document by the time it is read. Read it
    # again until the page that stays has loaded.
    settled = WebDriverWait(driver, 20, ignored_exceptions=(WebDriverException,))
    return settled.until(_loaded_notice)


def _left(page):
    """``ec.staleness_of``, also when Chrome reports the stale node as one that "does not
    belong to the document" (a plain WebDriverException: seen in CI once the page left)."""

    def left(driver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return left


def _loaded_notice(driver) -> str | bool:
    if driver.execute_script("return document.readyState") != "complete":
        return False
    return driver.find_element(By.ID, "notice").text or False


@pytest.fixture
def hub(declare, run_worker, hub_name, broker_url):
    topology = declare(
        {
            "hub": hub_name,
            "subscribers": {
                "welcome": {
                    "handler": "x:y",
                    "topics": ["user.*"],
                    "retry": {"attempts": 1},
                },
                "audit": {"handler": "x:y", "topics": ["user.#", "order.#"]},
            },
        }
    )
    handler = Signups()
    run_worker(topology, {"welcome": handler}, subscribers=["welcome"])
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = [
            publisher.publish("user.signed_up", {"user": n, "email": f"user{n}.example.com"})
            for n in range(3)
        ]
    dlq = topology.names.dead_letter_queue("welcome")
    wait(None, 20).until(lambda _: len(parked_ids(broker_url, dlq)) == 3)
    return topology, handler, ids


def test_an_operator_fixes_one_event_replays_it_and_purges_the_rest(hub, broker_url):
    topology, handler, ids = hub
    dlq = topology.names.dead_letter_queue("welcome")
    settings = ConsoleSettings(refresh=1.0)
    app = create_app(ConsoleService(Admin(topology, url=broker_url)), settings)
    with serving(app) as base, chromium() as driver:
        driver.get(base + "/")
        first = driver.find_element(By.ID, "subscribers")
        # The management API's counts lag up to ~5 s: the page refreshes itself
        # (no reload: the first table is replaced in place) until they show.
        dead = '[data-dead-letters="welcome"]'
        wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, dead).text == "3")
        wait(driver).until(_left(first))  # replaced by the script at least once
        loads = "return performance.getEntriesByType('navigation').length"
        assert driver.execute_script(loads) == 1  # ... without loading the page again
        assert driver.find_element(By.ID, "subscribers").is_displayed()
        screenshot(driver, "console-overview")
        driver.find_element(By.CSS_SELECTOR, dead).click()
        group = wait(driver).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, '[data-group="ValueError"]'))
        )
        assert group.find_elements(By.TAG_NAME, "td")[1].text == "3"
        rows = driver.find_elements(By.CSS_SELECTOR, "#events tbody tr[data-event]")
        assert [r.get_attribute("data-event") for r in rows] == ids
        screenshot(driver, "console-dead-letters")

        rows[0].find_element(By.TAG_NAME, "a").click()
        data = wait(driver).until(ec.presence_of_element_located((By.ID, "data")))
        assert '"email": "user0.example.com"' in data.text
        assert "ValueError" in driver.find_element(By.ID, "exception").text
        assert "bad email" in driver.find_element(By.ID, "traceback").text
        screenshot(driver, "console-event")
        editor = driver.find_element(By.ID, "edit-data")
        editor.clear()
        editor.send_keys('{"user": 0, "email": "user0@example.com"}')
        notice = submit(driver, "replay-edited")
        assert f"replayed an edited copy of event {ids[0]}" in notice

        wait(driver).until(lambda _: handler.handled)
        assert handler.handled == [(ids[0], {"user": 0, "email": "user0@example.com"})]
        assert parked_ids(broker_url, dlq) == ids[1:]
        # Handled once: no other copy waits that could bring it a second time.
        assert ready(broker_url, topology.names.queue("welcome")) == 0

        driver.find_element(By.ID, "confirm-all").send_keys("welcom")  # a typo
        assert "nothing deleted" in submit(driver, "purge-all")
        assert parked_ids(broker_url, dlq) == ids[1:]
        driver.find_element(By.ID, "confirm-all").send_keys("welcome")
        assert "deleted 2 event(s) of welcome for good" in submit(driver, "purge-all")
        assert driver.find_element(By.ID, "empty").text == "No event."
        assert parked_ids(broker_url, dlq) == []
    assert len(handler.handled) == 1


def test_the_topology_picture_draws_patterns_to_subscribers(hub, broker_url):
    topology, _, _ = hub
    app = create_app(ConsoleService(Admin(topology, url=broker_url)), ConsoleSettings())
    with serving(app) as base, chromium() as driver:
        driver.get(base + "/topology")
        svg = wait(driver).until(ec.presence_of_element_located((By.ID, "topology")))
        labels = [t.text for t in svg.find_elements(By.TAG_NAME, "text")]
        assert labels[:3] == ["user.*", "user.#", "order.#"]
        assert {"welcome", "audit"} <= set(labels)
        assert len(svg.find_elements(By.TAG_NAME, "line")) == 3
        screenshot(driver, "console-topology")


def test_beyond_loopback_the_console_needs_a_login(hub, broker_url, monkeypatch):
    topology, _, _ = hub
    host = non_loopback_address() or "127.0.0.1"
    for name in ("HUBBUB_CONSOLE_TOKEN", "HUBBUB_CONSOLE_USER", "HUBBUB_CONSOLE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    refused = CliRunner().invoke(cli, ["console", "--hub", topology.hub, "--host", "0.0.0.0"])
    assert refused.exit_code == 1
    assert "refusing to listen on 0.0.0.0 without authentication" in refused.output
    settings = ConsoleSettings(auth=Auth(token=TOKEN))
    app = create_app(ConsoleService(Admin(topology, url=broker_url)), settings)
    with serving(app, host) as base, chromium() as driver:
        driver.get(base + "/dlq/welcome")
        assert driver.current_url.startswith(base + "/login?next=")
        driver.find_element(By.ID, "password").send_keys("not-the-token")
        driver.find_element(By.ID, "login").click()
        error = wait(driver).until(ec.presence_of_element_located((By.ID, "error")))
        assert "wrong credentials" in error.text
        driver.find_element(By.ID, "password").send_keys(TOKEN)
        driver.find_element(By.ID, "login").click()
        wait(driver).until(ec.presence_of_element_located((By.ID, "events")))
        assert driver.current_url == base + "/dlq/welcome"
