"""docker-compose.yml and the Dockerfile, checked and run without a Docker engine.

The compose file is parsed as compose would (YAML merge keys, ``${VAR:-default}``
interpolation from an empty environment), its services checked, and then
each service's command runs here, exactly as the file states it: the
Dockerfile's ENTRYPOINT plus the service's ``command``, with the Dockerfile's
and the service's environment. Only what must differ outside a container is
overridden: the broker URL (the test broker), the topology file (a copy with
a unique hub), the hub name the example actions publish to, the outbox file,
and the metrics port (replicas share this host, not a network namespace each).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
import yaml

from example_app import outbox
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.topology import loader
from tests.support.process import HubbubProcess, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.same_on_every_version(
        reason="make compose-test runs these services for real on RabbitMQ 4.0.5 "
        "(tests/compose/test_stack.py: up, scale, kill, drain); the file checks need no broker"
    ),
]

REPO = Path(__file__).resolve().parents[2]
APP_TOPOLOGY = REPO / "example_app" / "topology.yaml"
SUBSCRIBERS = [s.name for s in loader.load(APP_TOPOLOGY).subscribers]
REPLICAS = 3


def interpolate(value, env):
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``$$`` substitution."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    pattern = r"\$\{(\w+)(?::-([^}]*))?\}"
    text = re.sub(pattern, lambda m: env.get(m[1]) or (m[2] or ""), value)
    return text.replace("$$", "$")


@pytest.fixture(scope="module")
def compose():
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return interpolate(raw, {})


@pytest.fixture(scope="module")
def dockerfile():
    lines = (REPO / "Dockerfile").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    text = text.replace("\\\n", " ")
    instructions = [line.split(None, 1) for line in text.splitlines() if line.strip()]
    env = {}
    for op, arg in instructions:
        if op == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(arg)))
    get = {op: arg for op, arg in instructions}  # the last one of each counts
    args = dict(arg.split("=", 1) for op, arg in instructions if op == "ARG" and "=" in arg)
    return {
        "from": interpolate(get["FROM"], args),
        "user": get["USER"],
        "workdir": get["WORKDIR"],
        "env": env,
        "entrypoint": json.loads(get["ENTRYPOINT"]),
        "copies": [arg for op, arg in instructions if op == "COPY"],
    }


def test_the_image_is_slim_non_root_and_runs_hubbub(dockerfile):
    assert re.fullmatch(r"python:3\.\d+-slim", dockerfile["from"])
    assert dockerfile["user"] not in ("root", "0")
    assert dockerfile["entrypoint"] == ["hubbub"]
    copied = " ".join(dockerfile["copies"])
    assert "hubbub" in copied and "example_app" in copied and "pyproject.toml" in copied
    # example_app is not installed: hubbub consume imports it from its working directory.
    assert "example_app ./example_app" in copied and dockerfile["workdir"] == "/app"
    container_path = dockerfile["env"]["HUBBUB_TOPOLOGY"]
    assert container_path == "/app/example_app/topology.yaml"


def test_services_images_health_checks_and_dependencies(compose):
    services = compose["services"]
    assert set(services) == {"rabbitmq", "topology", "console", *SUBSCRIBERS}
    broker = services["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:[\d.]+-management", broker["image"])
    assert broker["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    volume = broker["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume, not a bind mount

    topology = services["topology"]
    build = {"context": ".", "args": {"PYTHON_IMAGE": "python:3.12-slim"}}
    assert topology["build"] == build and topology["command"] == ["topology", "apply"]
    assert topology["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    assert topology["restart"] == "no"

    for name in SUBSCRIBERS:
        service = services[name]
        assert service["build"] == build
        assert service["command"] == ["consume", "--subscriber", name]
        assert service["depends_on"] == {
            "topology": {"condition": "service_completed_successfully"}
        }
        assert service["healthcheck"]["test"] == ["CMD", "hubbub", "health"]
        # Scalable with --scale: no fixed container name, no host port.
        assert "container_name" not in service and "ports" not in service
        assert service["environment"]["HUBBUB_METRICS_PORT"] == "9100"
        assert service["environment"]["HUBBUB_URL"].startswith("amqp://guest:guest@rabbitmq:5672")
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace > 30  # longer than the consumer's shutdown timeout


def test_every_service_command_runs_here_as_compose_states_it(
    compose, dockerfile, broker_url, hub_name, tmp_path, declare
):
    services = compose["services"]
    topology_file = tmp_path / "topology.yaml"
    topology_file.write_text(
        re.sub(r"^hub: events\b", f"hub: {hub_name}", APP_TOPOLOGY.read_text(), flags=re.M)
    )
    hub = loader.load(topology_file)
    assert hub.hub == hub_name
    declare(topology_file.read_text())  # deletes the hub after the test; apply runs below too
    box = tmp_path / "outbox.jsonl"

    def environment(service: dict, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
        if "HUBBUB_MANAGEMENT_URL" in os.environ:  # the test broker's API, like broker_url
            env["HUBBUB_MANAGEMENT_URL"] = os.environ["HUBBUB_MANAGEMENT_URL"]
        env.update(dockerfile["env"])
        env.update({k: str(v) for k, v in service["environment"].items()})
        env.update(
            HUBBUB_URL=broker_url,
            HUBBUB_TOPOLOGY=str(topology_file),
            HUBBUB_HUB=hub_name,
            HUBBUB_OUTBOX=str(box),
            **extra,
        )
        return env

    def argv(service: dict) -> list[str]:
        entry = [str(Path(sys.executable).parent / dockerfile["entrypoint"][0])]
        return entry + service["command"]

    applied = subprocess.run(
        argv(services["topology"]),
        env=environment(services["topology"]),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert applied.returncode == 0, applied.stderr
    assert f"applied hub {hub_name!r}" in applied.stdout

    processes: dict[str, list[HubbubProcess]] = {}
    try:
        for name in SUBSCRIBERS:
            count = REPLICAS if name == "welcome-email" else 1
            for _ in range(count):
                env = environment(services[name], HUBBUB_METRICS_PORT=str(free_port()))
                process = HubbubProcess(argv(services[name]), env=env, cwd=tmp_path).start()
                processes.setdefault(name, []).append(process)
        for name, replicas in processes.items():
            for process in replicas:
                process.wait_healthy(30)
                check = subprocess.run(
                    [
                        str(Path(sys.executable).parent / "hubbub"),
                        *services[name]["healthcheck"]["test"][2:],
                    ],
                    env=process.env,
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                assert check.returncode == 0, check.stderr
                assert check.stdout.strip() == f"healthy: consuming {name}"
        assert _consumers(broker_url, hub.names.queue("welcome-email")) == REPLICAS

        signups = 30
        events = [
            OutgoingEvent(
                "user.signed_up", {"user_id": i, "name": f"u{i}", "email": f"u{i}@example.com"}
            )
            for i in range(signups)
        ]
        events += [
            OutgoingEvent("billing.invoice.paid", {"user_id": 1}),
            OutgoingEvent("user.deleted", {"user_id": 2}),
        ]
        with Publisher(hub_name, url=broker_url) as publisher:
            ids = publisher.publish_many(events)
        expected = signups * 2 + 2  # welcome + its audit line per signup, sales, support
        records = _wait_for_outbox(box, expected, timeout=60)

        by_action: dict[str, list[str]] = {}
        for record in records:
            by_action.setdefault(record["action"], []).append(record["event_id"])
        welcomed = by_action["welcome-email"]
        assert sorted(welcomed) == sorted(ids[:signups])  # each exactly once across replicas
        assert len(by_action["audit-email"]) == signups
        assert by_action["notify-sales"] == [ids[signups]]
        assert by_action["notify-support"] == [ids[signups + 1]]
        shares = [_handled(p) for p in processes["welcome-email"]]
        assert sum(shares) == signups and all(shares), shares  # all three took a share
        time.sleep(0.5)  # a duplicate would show up now
        assert len(outbox_records(box)) == expected
    finally:
        for replicas in processes.values():
            for process in replicas:
                if process.running():
                    process.signal()
        codes = {name: [p.wait(40) for p in replicas] for name, replicas in processes.items()}
        for replicas in processes.values():
            for process in replicas:
                process.__exit__(None, None, None)
    assert all(code == 0 for group in codes.values() for code in group), codes


def outbox_records(path: Path) -> list[dict]:
    os.environ["HUBBUB_OUTBOX"] = str(path)
    try:
        return outbox.read()
    finally:
        del os.environ["HUBBUB_OUTBOX"]


def _wait_for_outbox(path: Path, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = outbox_records(path)
        if len(records) >= count:
            return records
        time.sleep(0.1)
    raise AssertionError(f"{len(outbox_records(path))} of {count} actions within {timeout}s")


def _handled(process: HubbubProcess) -> int:
    lines = [
        x for x in process.metrics().splitlines() if x.startswith("hubbub_events_handled_total{")
    ]
    return int(sum(float(x.rsplit(" ", 1)[1]) for x in lines))


def _consumers(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    finally:
        connection.close()
