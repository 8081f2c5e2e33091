"""The built-in actions, from a file alone: ``webhook`` against a local HTTP server
(signed, retried on timeouts and 5xx, dead-lettered on 4xx), ``republish`` chains and
``log``, on the in-memory hub."""

from __future__ import annotations

import logging
import re
import textwrap
import time
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from hubbub.actions import signing, webhooks
from hubbub.actions.republishing import RepublishSettings, copy_id, republish
from hubbub.cli.main import cli
from hubbub.envelope import Event
from hubbub.errors import TopologyError
from hubbub.testing import InMemoryHub
from hubbub.topology import loader
from hubbub.topology.references import environment_problems, resolve_handlers
from tests.support import certificates
from tests.support.receiver import Answer, receiving

SECRET = "s3cr3t-for-tests-only"


def hub_of(subscribers: str) -> InMemoryHub:
    text = "hub: shop\nsubscribers:\n" + textwrap.indent(textwrap.dedent(subscribers), "  ")
    return InMemoryHub(topology=loader.loads(text, check_handlers=True))


def webhook_hub(url: str, *, timeout: str = "5s", attempts: int = 3, secret: bool = True):
    settings = {"url": url, "timeout": timeout, "headers": {"X-Api-Key": "k1"}}
    if secret:
        settings["secret_env"] = "HOOK_SECRET"
    spec = {
        "handler": "webhook",
        "topics": ["order.placed"],
        "retry": {"attempts": attempts, "backoff": "10s", "jitter": False},
        "settings": settings,
    }
    return InMemoryHub(topology=loader.from_mapping({"hub": "shop", "subscribers": {"hook": spec}}))


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def test_a_webhook_posts_the_event_signed_so_the_receiver_can_verify_it():
    with receiving() as receiver:
        hub = webhook_hub(receiver.url)
        event_id = hub.publish("order.placed", {"order": 7}, headers={"x-request-id": "r1"})
        hub.run_until_idle()
    [request] = receiver.requests
    timestamp = signing.verify(SECRET, request.body, request.headers[signing.HEADER])
    assert request.headers[signing.HEADER].startswith(f"t={timestamp},v1=")
    body = orjson.loads(request.body)
    assert body["id"] == event_id and body["topic"] == "order.placed"
    assert body["data"] == {"order": 7} and body["attempt"] == 1
    assert body["subscriber"] == "hook" and body["timestamp"]
    assert {"correlation_id", "causation_id"} <= body.keys()
    assert request.headers["Hubbub-Event-Id"] == event_id
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Api-Key"] == "k1"
    assert [a.outcome for a in hub.attempts()] == ["ack"]


def test_a_changed_body_or_another_secret_fails_verification():
    header = signing.sign(SECRET, b'{"a":1}')
    signing.verify(SECRET, b'{"a":1}', header)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(SECRET, b'{"a":2}', header)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify("other", b'{"a":1}', header)
    old = signing.sign(SECRET, b"{}", timestamp=1_000)
    with pytest.raises(signing.SignatureError, match="tolerance"):
        signing.verify(SECRET, b"{}", old)
    with pytest.raises(signing.SignatureError, match="malformed"):
        signing.verify(SECRET, b"{}", "v1=abc")


def test_without_secret_env_the_request_is_unsigned():
    with receiving() as receiver:
        hub = webhook_hub(receiver.url, secret=False)
        hub.publish("order.placed", {})
        hub.run_until_idle()
    assert signing.HEADER not in receiver.requests[0].headers


def test_a_server_that_times_out_is_retried_then_dead_lettered_with_the_failure():
    with receiving(then=Answer(wait=1.0)) as receiver:
        hub = webhook_hub(receiver.url, timeout="0.2s", attempts=2)
        hub.publish("order.placed", {"order": 1})
        hub.run_until_idle()
        hub.advance(seconds=10)
        assert len(receiver.requests) == 2
    assert [a.outcome for a in hub.attempts()] == ["retry", "dead-letter"]
    [dead] = hub.dead_lettered("hook")
    assert dead.reason == "attempts exhausted" and dead.attempts == 2
    assert dead.exception == "hubbub.actions.webhooks.WebhookError"
    assert "no answer within 0.2s (timeout)" in dead.record["message"]


def test_a_500_then_200_is_delivered_once_on_the_retry():
    with receiving(Answer(500, body=b"database down")) as receiver:
        hub = webhook_hub(receiver.url)
        hub.publish("order.placed", {"order": 2})
        hub.run_until_idle()
        assert [a.outcome for a in hub.attempts()] == ["retry"]
        assert hub.attempts()[0].delay == 10
        hub.advance(seconds=10)
    assert [a.outcome for a in hub.attempts()] == ["retry", "ack"]
    assert [orjson.loads(r.body)["attempt"] for r in receiver.requests] == [1, 2]
    assert hub.dead_lettered() == []


def test_a_400_is_dead_lettered_at_once_naming_the_answer():
    with receiving(Answer(400, body=b'{"error": "unknown order"}')) as receiver:
        hub = webhook_hub(receiver.url)
        hub.publish("order.placed", {"order": 3})
        hub.run_until_idle()
    assert len(receiver.requests) == 1
    [dead] = hub.dead_lettered("hook")
    assert dead.reason == "not retryable" and dead.attempts == 1
    assert dead.exception == "hubbub.actions.webhooks.WebhookError"
    assert dead.record["message"] == (
        f'POST {receiver.url} answered 400 Bad Request: {{"error": "unknown order"}}'
    )


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_sets_the_wait_before_the_next_attempt(status):
    with receiving(Answer(status, headers={"Retry-After": "42"})) as receiver:
        hub = webhook_hub(receiver.url)
        hub.publish("order.placed", {})
        hub.run_until_idle()
        hub.advance(seconds=41)
        assert len(receiver.requests) == 1
        hub.advance(seconds=1)
        assert len(receiver.requests) == 2
    assert [(a.outcome, a.delay) for a in hub.attempts()] == [("retry", 42), ("ack", 0)]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, None), (204, None), (301, "dont"), (404, "dont"), (408, "retry"), (429, "retry")],
)
def test_what_each_answer_means(status, outcome):
    if outcome is None:
        webhooks.judge("u", status, "", None)
        return
    expected = webhooks.DontRetry if outcome == "dont" else webhooks.WebhookError
    with pytest.raises(expected):
        webhooks.judge("u", status, "", None)


def test_retry_after_may_be_an_http_date():
    assert webhooks.retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500) == 10
    assert webhooks.retry_after_seconds("soon") is None


def test_a_refused_connection_is_retried():
    with receiving() as receiver:
        url = receiver.url
    hub = webhook_hub(url)  # nothing listens there any more
    hub.publish("order.placed", {})
    hub.run_until_idle()
    [attempt] = hub.attempts()
    assert attempt.outcome == "retry" and attempt.error.endswith("WebhookError")


def test_a_kept_alive_connection_the_server_closed_is_replaced_without_a_failure():
    with receiving(then=Answer(200, hang_up=True)) as receiver:
        hub = webhook_hub(receiver.url)
        for n in range(3):
            hub.publish("order.placed", {"n": n})
            hub.run_until_idle()
    assert [orjson.loads(r.body)["data"]["n"] for r in receiver.requests] == [0, 1, 2]
    assert [a.outcome for a in hub.attempts()] == ["ack"] * 3


def test_headers_given_may_replace_the_defaults_but_not_the_event_id():
    with receiving() as receiver:
        hub = webhook_hub(receiver.url)
        spec = hub.topology.subscribers[0]
        settings = webhooks.WebhookSettings(url=receiver.url, headers={"user-agent": "crm/1"})
        webhooks.webhook(hub_event(spec.name), settings=settings)
    [request] = receiver.requests
    sent = [(name.lower(), value) for name, value in request.headers.items()]
    assert [v for n, v in sent if n == "user-agent"] == ["crm/1"]
    assert ("hubbub-event-id", "e1") in sent


def hub_event(subscriber: str) -> Event:
    return Event(topic="order.placed", data={}, id="e1", subscriber=subscriber)


def test_the_secret_never_reaches_a_log_or_a_failure_record(caplog):
    caplog.set_level(logging.DEBUG)
    with receiving(then=Answer(400, body=b"no")) as receiver:
        hub = webhook_hub(receiver.url)
        hub.publish("order.placed", {})
        hub.run_until_idle()
    [dead] = hub.dead_lettered()
    assert SECRET not in caplog.text
    assert all(SECRET not in str(v) for v in dead.headers.values())


def test_webhook_settings_are_checked_before_anything_runs(monkeypatch):
    monkeypatch.delenv("HOOK_SECRET")
    text = """\
        hub: shop
        subscribers:
          hook:
            handler: webhook
            topics: [order.placed]
            settings: {url: "ftp://x", timeout: soon, secret_env: HOOK_SECRET,
                       headers: {Hubbub-Signature: forged}, retries: 3}
          bare:
            handler: webhook
            topics: [order.placed]
        """
    with pytest.raises(TopologyError) as caught:
        loader.loads(textwrap.dedent(text), check_handlers=True)
    assert caught.value.problems == [  # in file order
        "subscribers.hook.settings.url: the URL does not start with http:// or https://: write "
        "the whole URL",
        "subscribers.hook.settings.timeout: not a duration: 'soon' (write e.g. 30, 90s, 10m, "
        "2h, 3d)",
        "subscribers.hook.settings.secret_env: environment variable HOOK_SECRET is not set (or "
        "empty): set it to the webhook's signing secret where hubbub runs, or remove secret_env",
        "subscribers.hook.settings.headers: 'Hubbub-Signature' is set by hubbub: remove it",
        "subscribers.hook.settings.retries: unknown key (known: headers, secret_env, timeout, "
        "url): check the spelling",
        "subscribers.bare.settings: handler 'hubbub.actions:webhook' needs settings (url): "
        "add them under settings",
    ]


def test_republish_chains_carry_the_data_and_the_causation_and_wait_their_delay():
    hub = hub_of(
        """
        follow-up:
          handler: republish
          topics: [order.placed]
          settings: {topic: order.follow_up, delay: 2h}
        escalate:
          handler: republish
          topics: [order.follow_up]
          settings: {topic: [order.escalated]}
        """
    )
    seen = []
    hub.subscriber("end", topics=["order.escalated"])(seen.append)
    first = hub.publish("order.placed", {"order": 9}, headers={"x-request-id": "r9"})
    hub.run_until_idle()
    assert seen == []
    hub.advance(hours=2)
    [follow_up] = hub.published("order.follow_up")
    [escalated] = seen
    assert escalated.data == {"order": 9} and escalated.headers["x-request-id"] == "r9"
    assert follow_up.causation_id == first and escalated.causation_id == follow_up.id
    assert escalated.correlation_id == follow_up.correlation_id
    assert follow_up.delay == 7200


def test_republish_to_several_topics_makes_one_event_each_subscriber_gets_once():
    hub = hub_of(
        """
        fan-out:
          handler: republish
          topics: [order.placed]
          settings: {topic: [order.follow_up, marketing.lead]}
        """
    )
    both, leads = [], []
    hub.subscriber("both", topics=["order.follow_up", "marketing.#"])(both.append)
    hub.subscriber("leads", topics=["marketing.lead"])(leads.append)
    hub.publish("order.placed", {"order": 1})
    hub.run_until_idle()
    [copy] = both
    assert copy.topics == ("order.follow_up", "marketing.lead")
    assert [e.id for e in leads] == [copy.id]


def test_a_webhook_body_lists_the_topics_of_an_event_of_several():
    with receiving() as receiver:
        hub = webhook_hub(receiver.url)
        hub.publish(["order.placed", "marketing.lead"], {})
        hub.run_until_idle()
    [request] = receiver.requests
    body = orjson.loads(request.body)
    assert body["topic"] == "order.placed"
    assert body["topics"] == ["order.placed", "marketing.lead"]
    assert request.headers["Hubbub-Topic"] == "order.placed"
    assert request.headers["Hubbub-Topics"] == "order.placed, marketing.lead"


def test_republish_settings_are_checked():
    text = """\
        hub: shop
        subscribers:
          r:
            handler: republish
            topics: [a]
            settings: {topic: "bad topic", delay: 0}
        """
    with pytest.raises(TopologyError) as caught:
        loader.loads(textwrap.dedent(text), check_handlers=True)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "subscribers.r.settings.topic",
        "subscribers.r.settings.delay",
    ]


def test_log_writes_the_event_with_the_template_at_the_level(caplog):
    caplog.set_level(logging.DEBUG, logger="hubbub.actions.log")
    hub = hub_of(
        """
        audit:
          handler: log
          topics: [user.#]
          settings: {level: warning, message: "signup of {data[email]} ({topic})"}
        plain:
          handler: log
          topics: [user.#]
        """
    )
    event_id = hub.publish("user.signed_up", {"email": "a@example.com"})
    hub.publish("user.left", {})
    hub.run_until_idle()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.endswith(".log")]
    assert ("WARNING", "signup of a@example.com (user.signed_up)") in lines
    assert ("INFO", f"event {event_id} (user.signed_up): {{'email': 'a@example.com'}}") in lines
    failed = [m for level, m in lines if level == "WARNING" and "template failed" in m]
    assert len(failed) == 1 and "KeyError: 'email'" in failed[0]
    assert [a.outcome for a in hub.attempts()] == ["ack"] * 4


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ("{event}", "unknown field {event}"),
        ("{data.__class__}", "reads an attribute"),
        ("{data[", "not a valid template"),
    ],
)
def test_log_templates_are_checked(message, problem):
    text = f"""\
        hub: shop
        subscribers:
          l:
            handler: log
            topics: [a]
            settings: {{message: "{message}", level: loud}}
        """
    with pytest.raises(TopologyError) as caught:
        loader.loads(textwrap.dedent(text), check_handlers=True)
    [template, level] = caught.value.problems  # file order
    assert level.startswith("subscribers.l.settings.level: Input should be 'DEBUG'")
    assert template.startswith("subscribers.l.settings.message: ") and problem in template


def test_the_examples_of_docs_actions_md_are_valid(monkeypatch):
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", "x")
    text = (Path(__file__).resolve().parents[2] / "docs" / "actions.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "subscribers:" in b]
    assert len(blocks) == 4
    for block in blocks:
        topology = loader.loads(f"hub: docs\n{block}")
        builtin = [s for s in topology.subscribers if s.handler.startswith("hubbub.actions:")]
        _, problems = resolve_handlers(builtin)
        assert problems == [], block


def test_the_timeout_bounds_the_whole_post_not_each_read():
    """A server sending its answer a byte at a time makes every read quick and the whole
    slow: ``timeout`` is the longest a POST may take, so it fails (and is retried) then."""
    with receiving(then=Answer(200, body=b"x" * 20, drip=0.3)) as receiver:
        hub = webhook_hub(receiver.url, timeout="1s")
        started = time.monotonic()
        hub.publish("order.placed", {})
        hub.run_until_idle()
        took = time.monotonic() - started
    assert took < 2.5
    [attempt] = hub.attempts()
    assert attempt.outcome == "retry" and attempt.error.endswith("WebhookError")


def test_a_failure_does_not_quote_a_secret_in_the_urls_path_or_query():
    """Slack, Teams and Discord incoming webhooks carry their secret in the path; failure
    lines go to logs and dead-letter records: they show the host and a hash of the URL."""
    secret = "XXXXSECRETTOKENXXXX"
    with receiving() as receiver:
        base = receiver.url.removesuffix("/hook")
    url = f"{base}/services/T000/B000/{secret}"  # nothing listens there any more
    with pytest.raises(webhooks.WebhookError) as caught:
        webhooks.webhook(hub_event("hook"), settings=webhooks.WebhookSettings(url=url))
    said = str(caught.value)
    assert secret not in said and "T000" not in said
    assert f"POST {base}/services/… [" in said
    assert webhooks.shown(url) != webhooks.shown(url.replace("B000", "B001"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/s3cr3t", "https://hooks.slack.com/services/…"),
        ("https://webhook.site/3f1c9a2e-77aa", "https://webhook.site/…"),
        ("https://crm.example/hook?token=s3cr3t", "https://crm.example/hook?…"),
        ("https://crm.example/hooks", "https://crm.example/hooks"),
        ("http://[::1]:8765/ok", "http://[::1]:8765/ok"),
    ],
)
def test_a_url_is_shown_without_what_may_be_secret(url, shown):
    assert webhooks.shown(url).split(" [")[0] == shown


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:9/hook?token=QSECRET x", "white space"),
        ("http://127.0.0.1:9/hook\n", "white space"),
        ("http://127.0.0.1:9/caf\u00e9", "non-ASCII"),
        ("http://127.0.0.1:99999/hook", "port"),
        ("http://127.0.0.1:abc/hook", "port"),
        ("crm.example.com/hook", "http://"),
    ],
)
def test_webhook_settings_refuse_a_url_that_cannot_be_posted_to(url, problem):
    """Validated before, then every POST failed (http.client's InvalidURL quoting the query
    string, tokens included, into the failure line; ValueError for the port)."""
    with pytest.raises(ValidationError) as caught:
        webhooks.WebhookSettings(url=url)
    [error] = caught.value.errors()  # what hubbub prints: the message, not the input
    assert problem in error["msg"] and "QSECRET" not in error["msg"]


@pytest.mark.parametrize("value", ["\u20acuro", "a\x00b", "line\nbreak"])
def test_webhook_settings_refuse_a_header_value_http_cannot_send(value):
    """Validated before, then every POST raised UnicodeEncodeError; the value (maybe a key)
    is not quoted."""
    with pytest.raises(ValidationError, match="X-Name") as caught:
        webhooks.WebhookSettings(url="http://127.0.0.1:9/hook", headers={"X-Name": value})
    [error] = caught.value.errors()  # what hubbub prints: the message, not the input
    assert value not in error["msg"]


def test_a_post_failing_half_way_leaves_no_connection_behind_for_the_next_event(monkeypatch):
    """An exception of any kind during a POST (here while sending the body) must not leave
    the half-sent request in the thread's kept-alive connection: the next event, innocent,
    would fail with CannotSendRequest."""
    with receiving() as receiver:
        settings = webhooks.WebhookSettings(url=receiver.url)
        webhooks.webhook(hub_event("hook"), settings=settings)  # a kept-alive connection
        original = webhooks.http.client.HTTPConnection.send

        def broken(self, data):
            raise RuntimeError("interrupted")

        monkeypatch.setattr(webhooks.http.client.HTTPConnection, "send", broken)
        with pytest.raises(RuntimeError):
            webhooks.webhook(hub_event("hook"), settings=settings)
        monkeypatch.setattr(webhooks.http.client.HTTPConnection, "send", original)
        webhooks.webhook(hub_event("hook"), settings=settings)
    assert len(receiver.requests) == 2


def test_a_republished_copy_keeps_its_id_when_the_republish_runs_again():
    """At least once: a republish whose ack is lost (a crash, a retry after the publish)
    runs again; both copies carry one id, so the next subscribers deduplicate them."""
    hub = InMemoryHub("h")
    follow_up = RepublishSettings(topic="order.follow_up")

    @hub.subscriber("chain", topics=["order.placed"], retry={"attempts": 2, "backoff": "1s"})
    def chain(event):
        republish(event, settings=follow_up)
        if event.attempt == 1:
            raise ConnectionError("the ack was lost")  # as a crash after the publish would

    hub.subscriber("survey", topics=["order.follow_up"])(lambda event: None)
    hub.publish("order.placed", {"order": 7})
    hub.run_until_idle()
    hub.advance(seconds=1)
    copies = hub.handled("survey")
    assert len(copies) == 2 and len({e.id for e in copies}) == 1


def test_copies_of_one_event_by_other_subscribers_or_to_other_topics_have_other_ids():
    event = Event(topic="order.placed", data={}, id="e1", subscriber="a")
    other = Event(topic="order.placed", data={}, id="e1", subscriber="b")
    ids = {
        copy_id(event, ("x.y",)),
        copy_id(other, ("x.y",)),
        copy_id(event, ("x.z",)),
        copy_id(event, ("x.y", "x.z")),
    }
    assert len(ids) == 4 and copy_id(event, ("x.y",)) == copy_id(event, ("x.y",))


def secret_file(tmp_path: Path) -> Path:
    spec = {
        "hub": "shop",
        "subscribers": {
            "hook": {
                "handler": "webhook",
                "topics": ["order.placed"],
                "settings": {"url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"},
            }
        },
    }
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_validate_warns_of_an_unset_secret_where_it_runs_and_passes(monkeypatch, tmp_path):
    """The secret is set where the subscriber runs, not in CI nor on a laptop: the file is
    right, so validate passes, saying what consume would need here."""
    monkeypatch.delenv("HOOK_SECRET")
    path = secret_file(tmp_path)
    result = CliRunner().invoke(cli, ["topology", "validate", "-f", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid: hub 'shop'" in result.stdout
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith(f"warning: {path}:9: subscribers.hook.settings.secret_env: ")
    assert "environment variable HOOK_SECRET is not set" in warning
    assert "'hubbub consume' refuses to start without it" in warning


def test_consume_refuses_to_start_without_the_secret_in_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("HOOK_SECRET")
    path = secret_file(tmp_path)
    result = CliRunner().invoke(
        cli, ["consume", "-f", str(path), "--url", "amqp://127.0.0.1:1/"]
    )  # port 1: it must stop before connecting
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert "subscribers.hook.settings.secret_env: environment variable HOOK_SECRET" in line


def test_the_test_hubs_refuse_to_run_a_webhook_without_its_secret(monkeypatch):
    monkeypatch.delenv("HOOK_SECRET")
    hub = webhook_hub("http://127.0.0.1:9/hook")
    with pytest.raises(TopologyError, match="environment variable HOOK_SECRET"):
        hub.publish("order.placed", {})
        hub.run_until_idle()


def test_without_the_environment_an_unset_secret_is_no_problem_of_the_file(monkeypatch):
    monkeypatch.delenv("HOOK_SECRET")
    text = (
        "hub: shop\nsubscribers:\n  hook:\n    handler: webhook\n    topics: [a]\n"
        "    settings: {url: 'http://h/x', secret_env: HOOK_SECRET, timeout: soon}\n"
    )
    with pytest.raises(TopologyError) as caught:
        loader.loads(text, check_handlers=True, environment=False)
    [problem] = caught.value.problems  # the file's problem alone
    assert problem.startswith("subscribers.hook.settings.timeout: ")
    fixed = text.replace(", timeout: soon", "")
    topology = loader.loads(fixed, check_handlers=True, environment=False)
    with pytest.raises(TopologyError, match="secret_env"):
        loader.loads(fixed, check_handlers=True)
    assert [p.split(":")[0] for p in environment_problems(topology.subscribers)] == [
        "subscribers.hook.settings.secret_env"
    ]


def test_https_to_a_plain_http_port_is_dead_lettered_at_once_as_a_configuration_error():
    """A TLS error is the same on every try: retried with the whole backoff (hours with
    attempts: 8) it only delayed the news."""
    with receiving() as receiver:
        hub = webhook_hub(receiver.url.replace("http://", "https://"))
        hub.publish("order.placed", {})
        hub.run_until_idle()
    [dead] = hub.dead_lettered("hook")
    assert dead.reason == "not retryable" and dead.attempts == 1
    assert dead.exception == "hubbub.actions.webhooks.WebhookError"
    assert "TLS configuration error" in dead.record["message"]
    assert "scheme and port" in dead.record["message"]


def test_a_certificate_the_system_does_not_trust_is_dead_lettered_at_once(tmp_path):
    certs = certificates.make(tmp_path)
    with receiving(tls=(certs.cert, certs.key)) as receiver:
        hub = webhook_hub(receiver.url)
        hub.publish("order.placed", {})
        hub.run_until_idle()
    assert receiver.requests == []
    [dead] = hub.dead_lettered("hook")
    assert dead.reason == "not retryable"
    assert "certificate" in dead.record["message"]


def test_a_long_retry_after_is_capped_so_the_event_does_not_wait_a_year():
    with receiving(Answer(503, headers={"Retry-After": "31536000"})) as receiver:
        hub = webhook_hub(receiver.url)
        hub.publish("order.placed", {})
        hub.run_until_idle()
        hub.advance(seconds=webhooks.MAX_RETRY_AFTER)
        assert len(receiver.requests) == 2
    [first, _] = hub.attempts()
    assert first.delay == webhooks.MAX_RETRY_AFTER


def test_the_default_log_line_names_every_topic_of_an_event_of_several(caplog):
    caplog.set_level(logging.INFO, logger="hubbub.actions.log")
    hub = hub_of(
        """
        plain:
          handler: log
          topics: [user.#]
        """
    )
    event_id = hub.publish(["user.signed_up", "marketing.lead"], {})
    hub.run_until_idle()
    lines = [r.getMessage() for r in caplog.records if r.name.endswith(".log")]
    assert lines == [f"event {event_id} (user.signed_up, marketing.lead): {{}}"]
