"""Failed events under faults: a replay killed midway, a poison event that kills its consumer.

Both run real ``hubbub`` processes against the shared broker and kill only
those processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from core_support import depth
from dlq_support import Failure, ids_in, park

from hubbub.cli.main import cli
from hubbub.producers import Publisher
from tests.support.process import hubbub_command
from tests.support.recording import FILE_ENV, Recording

pytestmark = [pytest.mark.integration, pytest.mark.fault]

HERE = Path(__file__).parent


def test_a_replay_killed_midway_leaves_every_event_in_the_dlq_or_the_queue(
    declare, hub_name, broker_url, tmp_path
):
    topology = declare(
        {"hub": hub_name, "subscribers": {"work": {"handler": "x:y", "topics": ["job.#"]}}}
    )
    names = topology.names
    failures = [Failure("job.run", {"n": n}, ValueError("x")) for n in range(40)]
    ids = park(broker_url, topology, "work", failures)
    log = tmp_path / "replay.log"
    with log.open("w") as out:
        replay = subprocess.Popen(
            hubbub_command("dlq", "replay", "work", "--hub", hub_name, "--all", "--rate", "20/s"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while depth(broker_url, names.queue("work")) < 8:
        assert replay.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"the replay did not start: {log.read_text()}"
        time.sleep(0.02)
    os.kill(replay.pid, signal.SIGKILL)
    assert replay.wait(10) == -signal.SIGKILL

    def where() -> tuple[list, list]:
        return ids_in(broker_url, names.dead_letter_queue("work")), ids_in(
            broker_url, names.queue("work")
        )

    deadline = time.monotonic() + 10  # the broker returns the killed process's messages
    while set((parked := where())[0]) | set(parked[1]) != set(ids):
        assert time.monotonic() < deadline, f"lost: {set(ids) - set(parked[0]) - set(parked[1])}"
        time.sleep(0.1)
    still, moved = parked
    assert 8 <= len(set(moved)) < 40 and still, "the kill should land midway"
    assert moved == [i for i in ids if i in set(moved)]  # copies arrive in DLQ order
    # Read for the first time, the held part went back ahead of the unread part:
    # the order held (a DLQ read before may instead see its read part move back).
    assert still == [i for i in ids if i in set(still)]
    reported = [
        line.split()[1] for line in log.read_text().splitlines() if line.startswith("replayed")
    ]
    assert set(reported) <= set(moved) and not set(reported) & set(still)


def test_a_poison_event_is_dead_lettered_by_the_delivery_limit_and_the_others_are_handled(
    declare, hub_name, broker_url, tmp_path
):
    spec = {
        "hub": hub_name,
        "subscribers": {
            "fragile": {
                "handler": "dlq_app:fragile",
                "topics": ["job.#"],
                "delivery_limit": 2,
                "prefetch": 1,  # see docs/dead-letters.md: prefetched events count deliveries too
            }
        },
    }
    topology = declare(spec)
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(spec))
    with Publisher(hub_name, url=broker_url) as publisher:
        poison = publisher.publish("job.poison", {"poison": True})
        good = {publisher.publish("job.ok", {"n": n}) for n in range(3)}
    recording = Recording(tmp_path / "record.jsonl")
    env = {**os.environ, FILE_ENV: str(recording.path), "HUBBUB_LOG_LEVEL": "WARNING"}
    dlq = topology.names.dead_letter_queue("fragile")
    deaths, consumer = 0, None
    deadline = time.monotonic() + 45
    log = tmp_path / "consume.log"
    try:
        with log.open("w") as out:
            while not (set(recording.done()) >= good and depth(broker_url, dlq) == 1):
                assert time.monotonic() < deadline, log.read_text()
                if consumer is None or consumer.poll() is not None:
                    if consumer is not None:  # it died: restart it, as a supervisor would
                        assert consumer.returncode == 17, log.read_text()
                        deaths += 1
                    consumer = subprocess.Popen(
                        hubbub_command("consume", "--file", str(file)),
                        cwd=HERE,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                time.sleep(0.05)
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
            consumer.wait(30)
    # Delivered once, then redelivered while the count is within the limit of 2.
    assert deaths == 3
    assert recording.done() == {i: 1 for i in good}
    result = CliRunner().invoke(cli, ["dlq", "show", "fragile", "--hub", hub_name, "--json"])
    assert result.exit_code == 0, result.output
    [event] = yaml.safe_load(result.output)
    assert (event["id"], event["topic"], event["reason"], event["dead_lettered_by"]) == (
        poison,
        "job.poison",
        "delivery_limit",
        "broker",
    )
    assert event["exception"] is None and "delivery limit" in event["message"]
    assert event["attempts"] == 1  # it never got past its first attempt
