"""The command line as a user runs it: consume until SIGTERM, publish, errors in one line."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from core_support import consuming, depth, hubbub, take_all, terminate, wait_until

from hubbub.envelope import without_broker_headers
from hubbub.producers import OutgoingEvent, Publisher
from tests.support.recording import written_lines

pytestmark = pytest.mark.integration

SLOW_APP = """
import os
import time


def slow(event):
    _log("start", event)
    time.sleep(1.0)
    _log("done", event)


def _log(what, event):
    fd = os.open(os.environ["SLOW_APP_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{what} {event.data['n']}\\n".encode())
    finally:
        os.close(fd)
"""


def write_topology(path: Path, hub: str, handler: str = "json:dumps", **extra: object) -> Path:
    spec = {"hub": hub, "subscribers": {"s": {"handler": handler, "topics": ["job"], **extra}}}
    path.write_text(yaml.safe_dump(spec))
    return path


def log_lines(path: Path) -> list[str]:
    return written_lines(path)


def test_consume_finishes_events_in_hand_on_sigterm_and_exits_0(
    declare, hub_name, broker_url, tmp_path
):
    declare({"hub": hub_name, "subscribers": {"s": {"handler": "m:f", "topics": ["job"]}}})
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    topology = write_topology(tmp_path / "topology.yaml", hub_name, "slow_app:slow")
    log = tmp_path / "handled.log"
    total = 12
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish_many(OutgoingEvent("job", {"n": n}) for n in range(total))

    with consuming(
        "-f", str(topology), "--concurrency", "4",
        url=broker_url, cwd=tmp_path, SLOW_APP_LOG=str(log),
    ) as process:  # fmt: skip
        wait_until(
            lambda: (
                process.poll() is not None
                or sum(line.startswith("start") for line in log_lines(log)) >= 4
            ),
            20,
            "four events are in flight",
        )
        assert process.poll() is None, process.communicate()[1]
        in_flight_at_signal = {line.split()[1] for line in log_lines(log)}
        stderr = terminate(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr

    started = [line.split()[1] for line in log_lines(log) if line.startswith("start")]
    done = [line.split()[1] for line in log_lines(log) if line.startswith("done")]
    assert len(started) == len(set(started))  # nothing handled twice
    assert sorted(started) == sorted(done)  # every event in hand was finished
    assert in_flight_at_signal <= set(done)
    assert 4 <= len(done) < total
    # ...and acked: the rest went back to the queue, nothing was lost.
    left = [orjson.loads(body)["n"] for _, _, body in take_all(broker_url, f"{hub_name}.s")]
    assert sorted(left + [int(n) for n in done]) == list(range(total))


def test_publish_with_a_file_and_with_a_hub_name(declare, hub_name, broker_url, tmp_path):
    declare({"hub": hub_name, "subscribers": {"s": {"handler": "m:f", "topics": ["job"]}}})
    topology = write_topology(tmp_path / "topology.yaml", hub_name)

    by_file = hubbub("publish", "--file", str(topology), "job", '{"n": 1}', url=broker_url)
    assert by_file.returncode == 0, by_file.stderr
    word, topic, event_id, to, hub = by_file.stdout.split()
    assert (word, topic, to, hub) == ("published", "job", "to", hub_name)

    by_hub = hubbub(
        "publish", "--hub", hub_name, "job", "[2]", "--id", "evt-2", "--header", "tenant=t1",
        url=broker_url,
    )  # fmt: skip
    assert by_hub.returncode == 0, by_hub.stderr
    assert by_hub.stdout == f"published job evt-2 to {hub_name}\n"

    messages = take_all(broker_url, f"{hub_name}.s")
    assert [(p.message_id, orjson.loads(b)) for _, p, b in messages] == [
        (event_id, {"n": 1}),
        ("evt-2", [2]),
    ]
    assert without_broker_headers(messages[1][1].headers) == {"tenant": "t1"}

    unmatched = hubbub("publish", "-f", str(topology), "no.one", url=broker_url)
    assert unmatched.returncode == 0, unmatched.stderr
    assert unmatched.stdout.splitlines()[1] == (
        f"note: no subscriber matches 'no.one'; parked in {hub_name}.unrouted"
    )
    assert depth(broker_url, f"{hub_name}.unrouted") == 1


GOOD_FILE = "hub: cli-errors\nsubscribers:\n  s: {handler: 'json:dumps', topics: [job]}\n"
#: Each error a user can hit: (name, topology file, command line, what the one line says).
#: ``{file}`` is the topology file; ``{scheme}``, ``{credentials}``, ``{down}`` and ``{vhost}``
#: are broker URLs that are wrong in that way (all with password "s3cret-pw" but ``{vhost}``).
ERRORS = [
    ("wrong-scheme", GOOD_FILE, "consume -f {file} --url {scheme}",
     "invalid broker URL: http://guest:***@"),
    ("wrong-credentials-publish", GOOD_FILE, "publish --hub h job --url {credentials}",
     "refused the credentials: check the user and password in the URL"),
    ("wrong-credentials-apply", GOOD_FILE, "topology apply -f {file} --url {credentials}",
     "refused the credentials: check the user and password in the URL"),
    ("broker-down-consume", GOOD_FILE, "consume -f {file} --url {down}",
     "(connection refused): is RabbitMQ running and reachable?"),
    ("broker-down-publish", GOOD_FILE, "publish --hub h job --url {down}",
     "(connection refused): is RabbitMQ running and reachable?"),
    ("vhost-missing-consume", GOOD_FILE, "consume -f {file} --url {vhost}",
     "refused the virtual host: it does not exist or the user has no access to it"),
    ("vhost-missing-plan", GOOD_FILE, "topology plan -f {file} --url {vhost}",
     "virtual host 'no-such-vhost' does not exist"),
    ("bad-pattern", "hub: h\nsubscribers:\n  s: {handler: 'json:dumps', topics: ['job.*x']}\n",
     "topology apply -f {file}",
     "subscribers.s.topics[0]: pattern 'job.*x': '*x' mixes a wildcard with text"),
    ("duplicate-subscriber", GOOD_FILE + "  s: {handler: 'json:dumps', topics: [b]}\n",
     "topology plan -f {file}", ":4: 's' is defined twice"),
    ("invalid-yaml", "hub: [oops\n", "publish job -f {file}", "not valid YAML"),
    ("handler-import", "hub: h\nsubscribers:\n  s: {handler: 'no_such_mod_xyz:f', topics: [a]}\n",
     "consume -f {file}",
     ":3: subscribers.s.handler: cannot import handler 'no_such_mod_xyz:f': ModuleNotFoundError"),
    ("unknown-subscriber", GOOD_FILE, "consume -f {file} --subscriber nobody",
     "unknown subscriber(s) nobody in --subscriber"),
]  # fmt: skip


@pytest.fixture(scope="module")
def error_runs(broker_url, tmp_path_factory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every ERRORS command, run at once (in parallel: each is a fresh Python process)."""
    parts = urlsplit(broker_url)
    host = f"{parts.hostname}:{parts.port or 5672}"
    user, password = parts.username or "guest", parts.password or "guest"
    values = {
        "scheme": f"http://{user}:s3cret-pw@{host}/",
        "credentials": f"amqp://{user}:s3cret-pw@{host}/%2F",
        "down": f"amqp://{user}:s3cret-pw@127.0.0.1:1/%2F",
        "vhost": f"amqp://{user}:{password}@{host}/no-such-vhost",
    }
    folder = tmp_path_factory.mktemp("cli-errors")

    def run(name: str, topology: str, command: str) -> subprocess.CompletedProcess[str]:
        path = folder / f"{name}.yaml"
        path.write_text(topology)
        argv = command.format(file=path, **values).split()
        return hubbub(*argv, url=broker_url, HUBBUB_LOG_LEVEL="INFO")

    with ThreadPoolExecutor(len(ERRORS)) as pool:
        futures = {name: pool.submit(run, name, text, cmd) for name, text, cmd, _ in ERRORS}
    return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize(("name", "expected"), [(e[0], e[3]) for e in ERRORS], ids=lambda v: v)
def test_each_error_is_one_clear_line_without_traceback_or_password(error_runs, name, expected):
    result = error_runs[name]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "guest:guest@" not in result.stderr + result.stdout


@pytest.mark.same_on_every_version(reason="no broker: validate reads a file, imports handlers")
def test_validate_reports_every_problem_of_a_file(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text("hub: 'a b'\nsubscribers:\n  s: {handler: 'x:y', topics: ['']}\n")
    result = hubbub("topology", "validate", "--file", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: {path}: 3 problems:",
        f"  - {path}:1: hub: hub name 'a b' may only contain letters, digits, '.', '_', '-', "
        "starting with a letter or digit",
        f"  - {path}:3: subscribers.s.handler: cannot import handler 'x:y': ModuleNotFoundError: "
        "No module named 'x'",
        f"  - {path}:3: subscribers.s.topics[0]: pattern is empty",
    ]  # in file order: line, then column


MIDDLEWARE_APP = """
import os
from dataclasses import replace

import hubbub
from hubbub import Middleware


def _log(line):
    with open(os.environ["MW_APP_LOG"], "a") as out:
        out.write(line + "\\n")


class Audit(Middleware):
    def consume(self, event, call_next):
        _log(f"before {event.topic} {event.data['n']}")
        result = call_next(event)
        _log(f"after {event.topic} {event.data['n']}")
        return result

    def publish(self, message, call_next):
        headers = {**(message.message.headers or {}), "audited": "yes"}
        return call_next(replace(message, message=message.message.with_headers(headers)))


def handler(event):
    _log(f"handler {event.topic} {event.data['n']}")
    hubbub.publish("job.done", {"n": event.data["n"]})
"""


def test_consume_runs_middleware_named_on_the_command_line(declare, hub_name, broker_url, tmp_path):
    """`hubbub consume --middleware app:Audit`: around each handler, and on what it publishes."""
    spec = {
        "hub": hub_name,
        "subscribers": {
            "s": {"handler": "mw_app:handler", "topics": ["job"]},
            "done": {"handler": "m:f", "topics": ["job.done"]},
        },
    }
    declare(spec)
    (tmp_path / "mw_app.py").write_text(MIDDLEWARE_APP)
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump(spec))
    log = tmp_path / "mw.log"
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish_many(OutgoingEvent("job", {"n": n}) for n in range(3))
    with consuming(
        "-f", str(topology), "--subscriber", "s", "--middleware", "mw_app:Audit",
        url=broker_url, cwd=tmp_path, MW_APP_LOG=str(log),
    ) as process:  # fmt: skip
        wait_until(
            lambda: process.poll() is not None or depth(broker_url, f"{hub_name}.done") == 3,
            30,
            "the three events handled and their follow-ups published",
        )
        stderr = terminate(process)
    assert process.returncode == 0, stderr
    assert log_lines(log) == [
        line for n in range(3) for line in (f"before job {n}", f"handler job {n}", f"after job {n}")
    ]
    follow_ups = take_all(broker_url, f"{hub_name}.done")
    assert sorted(orjson.loads(body)["n"] for _, _, body in follow_ups) == [0, 1, 2]
    assert all(props.headers["audited"] == "yes" for _, props, _ in follow_ups)
