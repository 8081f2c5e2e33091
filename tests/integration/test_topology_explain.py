"""``topology plan`` and ``apply`` say what an edit of the file means (real broker).

Each test edits a topology file step by step, as a non-developer would, in a
virtual host of its own, and reads the plain-words part of the output.
"""

from __future__ import annotations

import time

import pytest
import yaml
from click.testing import CliRunner

from hubbub.cli.main import cli
from hubbub.producers import Publisher
from hubbub.topology import loader
from hubbub.topology.explain import NO_RECORD, RESTART
from hubbub.topology.names import HubNames
from hubbub.topology.sync import make_review
from hubbub.transport import open_session

pytestmark = pytest.mark.integration

NAMES = HubNames("events")


def subscribers(**changes: dict | None) -> dict:
    subs: dict = {
        "welcome-email": {"handler": "json:dumps", "topics": ["user.signed_up"]},
        "notify-sales": {
            "handler": "json:dumps",
            "topics": ["user.first_action.*"],
            "settings": {"threshold": 10},
        },
    }
    for name, keys in changes.items():
        if keys is None:
            subs.pop(name)
        else:
            subs[name] = {**subs.get(name, {}), **keys}
    return {"hub": "events", "subscribers": subs}


@pytest.fixture
def edit(tmp_path):
    """Write the topology file (call again to edit it)."""
    path = tmp_path / "topology.yaml"

    def write(**changes: dict | None):
        path.write_text(yaml.safe_dump(subscribers(**changes), sort_keys=False))
        return path

    return write


def run(command: str, path, url: str) -> tuple[list[str], str]:
    """``hubbub topology <command>``: (the plain-words lines, the broker part)."""
    result = CliRunner().invoke(cli, ["topology", command, "-f", str(path), "--url", url])
    assert result.exit_code == 0, result.output
    meaning, _, broker = result.stdout.partition("On the broker:\n")
    return meaning.splitlines(), broker


def sentences(lines: list[str]) -> list[str]:
    return [line.removeprefix("  - ") for line in lines[1:]]


def test_an_edit_from_plan_to_apply_to_plan(edit, hubbub_vhost_url):
    url = hubbub_vhost_url
    path = edit()
    first, broker = run("plan", path, url)
    assert first == [
        "What this change means:",
        "  - new subscriber welcome-email will receive user.signed_up",
        "  - new subscriber notify-sales will receive user.first_action.*",
    ]
    assert "+ create queue events.welcome-email" in broker
    applied, _ = run("apply", path, url)
    assert applied == first  # apply says the same, then does it

    again, broker = run("plan", path, url)
    assert len(again) == 1
    assert again[0].startswith(
        "What this change means: nothing changes for the subscribers (compared with what was "
        "last applied "
    )
    assert again[0].endswith(" from topology.yaml).")
    assert broker == "no changes: the broker matches the topology\n"

    path = edit(
        **{
            "notify-sales": {
                "topics": ["user.first_action.*", "billing.invoice.paid"],
                "settings": {"threshold": 20, "template": "v2"},
            }
        }
    )
    edited, broker = run("plan", path, url)
    assert sentences(edited) == [
        "notify-sales will also receive billing.invoice.paid",
        "notify-sales's settings change: threshold 10 → 20, template added: 'v2'",
        RESTART,
    ]
    assert "+ create binding events -> queue events.notify-sales [billing.invoice.paid]" in broker
    assert sentences(run("apply", path, url)[0]) == sentences(edited)
    assert run("plan", path, url)[0][0].startswith("What this change means: nothing changes")


def test_a_subscriber_left_out_keeps_its_queue_and_its_events(edit, hubbub_vhost_url):
    url = hubbub_vhost_url
    run("apply", edit(), url)
    with Publisher("events", url=url) as publisher:
        for n in range(4):
            publisher.publish("user.first_action.login", {"n": n})
    path = edit(**{"notify-sales": None})
    expected = (
        "subscriber notify-sales is no longer in the file: it stops receiving events; "
        "its queue is kept with 4 events (once drained, delete it: "
        "rabbitmqctl delete_queue events.notify-sales --if-empty)"
    )
    deadline = time.monotonic() + 15  # the management API counts every 5 s
    while (said := sentences(run("plan", path, url)[0])) != [expected]:
        assert time.monotonic() < deadline, said
        time.sleep(0.5)


def test_without_a_record_the_broker_shows_topics(edit, hubbub_vhost_url):
    url = hubbub_vhost_url
    run("apply", edit(), url)
    session = open_session([url], name="test: an older hubbub applied this hub")
    try:
        assert session.peek(NAMES.applied) is not None
        session.delete_queue(NAMES.applied)  # as an older hubbub leaves the broker
        assert session.peek(NAMES.applied) is None
    finally:
        session.close()

    path = edit(
        **{
            "welcome-email": {"topics": ["user.signed_up", "user.invited"]},
            "notify-sales": {"settings": {"threshold": 99}},
        }
    )
    lines, _ = run("plan", path, url)
    assert lines[0] == "What this change means:"
    assert sentences(lines) == [NO_RECORD, "welcome-email will also receive user.invited"]
    run("apply", path, url)  # records it again
    assert run("plan", path, url)[0][0].startswith("What this change means: nothing changes")


def test_the_record_holds_one_message_however_often_apply_runs(edit, hubbub_vhost_url):
    url = hubbub_vhost_url
    path = edit()
    for _ in range(3):
        run("apply", path, url)
        run("plan", path, url)  # reading the record gives it back
    session = open_session([url], name="test: the record")
    try:
        counts = session.queue_counts(NAMES.applied)
        assert counts is not None and counts.ready == 1
    finally:
        session.close()
    topology = loader.load(path)
    review = make_review(topology, [url])
    assert review.applied is not None and review.applied.file == "topology.yaml"
    assert review.applied.topology.subscribers[0] == topology.subscribers[0]
    assert review.explain() == []


def test_the_record_on_the_broker_holds_no_webhook_header_or_url_token(edit, hubbub_vhost_url):
    """Anyone who may read the vhost's queues reads the record (management UI, Get messages)."""
    url = hubbub_vhost_url
    hook = {
        "url": "https://crm.example/hook?token=QUERYSECRET",
        "headers": {"Authorization": "Bearer HEADERSECRET"},
    }
    path = edit(**{"notify-sales": {"handler": "webhook", "settings": hook}})
    run("apply", path, url)
    session = open_session([url], name="test: the record's secrets")
    try:
        body = session.peek(NAMES.applied)
    finally:
        session.close()
    assert body is not None and b"notify-sales" in body
    assert b"QUERYSECRET" not in body and b"HEADERSECRET" not in body
    hook["headers"] = {"Authorization": "Bearer NEWSECRET"}
    path = edit(**{"notify-sales": {"handler": "webhook", "settings": hook}})
    lines, _ = run("plan", path, url)
    assert "notify-sales's settings change: headers changed (value not shown)" in sentences(lines)
    assert not any("SECRET" in line for line in lines)


def test_a_changed_delay_says_what_the_events_already_waiting_keep(edit, hubbub_vhost_url):
    url = hubbub_vhost_url
    reminder = {"handler": "json:dumps", "topics": ["user.active"], "delay": "3d"}
    run("apply", edit(**{"inactivity-reminder": reminder}), url)
    with Publisher("events", url=url) as publisher:
        for n in range(3):
            publisher.publish("user.active", {"user_id": n})
    path = edit(**{"inactivity-reminder": {**reminder, "delay": "5d"}})
    expected = "inactivity-reminder's delay changes from 3d to 5d; 3 events already waiting keep 3d"
    deadline = time.monotonic() + 15  # the management API counts every 5 s
    while (said := sentences(run("plan", path, url)[0])) != [expected]:
        assert time.monotonic() < deadline, said
        time.sleep(0.5)
    applied, broker = run("apply", path, url)
    assert sentences(applied) == [expected]
    assert f"+ create queue {NAMES.wait_queue('inactivity-reminder', 5 * 86400)}" in broker
    after, broker = run("plan", path, url)
    assert after[0].startswith("What this change means: nothing changes for the subscribers")
    old = NAMES.wait_queue("inactivity-reminder", 3 * 86400)
    assert f"? obsolete queue {old}: inactivity-reminder's old 3d wait queue" in broker


def test_without_a_record_the_delay_comes_from_the_wait_queue(edit, hubbub_vhost_url):
    url = hubbub_vhost_url
    reminder = {"handler": "json:dumps", "topics": ["user.active"], "delay": "3d"}
    run("apply", edit(**{"inactivity-reminder": reminder}), url)
    session = open_session([url], name="test: an older hubbub applied this hub")
    try:
        session.delete_queue(NAMES.applied)
    finally:
        session.close()
    path = edit(**{"inactivity-reminder": {**reminder, "delay": None}})
    assert sentences(run("plan", path, url)[0]) == [
        NO_RECORD,
        "inactivity-reminder will no longer wait: it receives new events at once",
    ]
