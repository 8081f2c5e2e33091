"""A consumer killed after its handler's transaction committed but before its ack left:
the event comes back, and the inbox skips it, so what the handler wrote is there once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg
import pytest
import yaml
from fault_support import queue_depth, wait_for

from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub
from hubbub.topology import apply, loader
from tests.support.process import HubbubProcess, free_port, hubbub_command

pytestmark = pytest.mark.fault

APP = """
import os
import signal
from pathlib import Path

from hubbub import Middleware
from hubbub.inbox import connection

EFFECTS = os.environ["INBOX_FAULT_EFFECTS"]
MARK = Path(os.environ["INBOX_FAULT_MARK"])


def handler(event):
    # The handler's effect, in the transaction that records the event as handled.
    connection().execute(
        f'INSERT INTO "{EFFECTS}" (event_id, pid) VALUES (%s, %s)', (event.id, os.getpid())
    )


class DieAfterCommit(Middleware):
    # Outside the inbox: when call_next returns, the record and the effect are
    # committed, and the ack is not sent yet.
    def consume(self, event, call_next):
        result = call_next(event)
        if event.data.get("die") and not MARK.exists():
            MARK.write_text(event.id)
            os.kill(os.getpid(), signal.SIGKILL)
        return result
"""


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    return int(row[0]) if row else 0


def test_kill_9_between_commit_and_ack_leaves_each_effect_once(
    broker_url, hub_name, tmp_path: Path, postgres_dsn, inbox_table
):
    effects = f"{inbox_table}_effects"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{effects}" (event_id text NOT NULL, pid int NOT NULL)')
    (tmp_path / "inbox_fault_app.py").write_text(APP)
    spec = {
        "hub": hub_name,
        "subscribers": {
            "work": {
                "handler": "inbox_fault_app:handler",
                "topics": ["job.#"],
                "prefetch": 10,
                "concurrency": 1,
                "idempotent": True,
            }
        },
    }
    topology = loader.from_mapping(spec)
    apply(topology, [broker_url])
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(spec))
    mark = tmp_path / "died-on"
    environment = {
        **os.environ,
        "HUBBUB_URL": broker_url,
        "HUBBUB_TOPOLOGY": str(file),
        "HUBBUB_LOG_LEVEL": "INFO",
        "INBOX_FAULT_EFFECTS": effects,
        "INBOX_FAULT_MARK": str(mark),
        "HUBBUB_INBOX_TABLE": inbox_table,  # --inbox-table's variable
    }
    argv = hubbub_command(
        "consume", "--middleware", "inbox_fault_app:DieAfterCommit",
        "--inbox", postgres_dsn,
    )  # fmt: skip
    try:
        with HubbubProcess(argv, env=environment, cwd=tmp_path, metrics_port=free_port()) as first:
            first.wait_healthy()
            with Publisher(hub_name, url=broker_url) as publisher:
                ids = [publisher.publish("job.n", {"n": n, "die": n == 10}) for n in range(30)]
            assert first.wait(30) == -signal.SIGKILL, first.output()
            died_on = mark.read_text()
            assert died_on == ids[10]
            with HubbubProcess(
                argv, env=environment, cwd=tmp_path, metrics_port=free_port()
            ) as second:
                second.wait_healthy()
                wait_for(
                    lambda: count(postgres_dsn, effects) >= 30 and "skipped" in second.output(),
                    30,
                    "every event handled, and the one that came back skipped",
                )
                second.signal(signal.SIGTERM)
                assert second.wait(30) == 0, second.output()
                log = second.output()
            # Stopped: whatever it had not acked would be ready again.
            assert queue_depth(broker_url, topology.names.queue("work")) == (0, 0)
        with psycopg.connect(postgres_dsn) as conn:
            rows = conn.execute(f'SELECT event_id, pid FROM "{effects}"').fetchall()
    finally:
        delete_hub(broker_url, topology)
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{effects}"')
    assert f"event {died_on} (job.n) already handled by work: skipped" in log, log
    written = [event_id for event_id, _pid in rows]
    assert sorted(written) == sorted(ids), "an effect is missing or written twice"
    assert dict(rows)[died_on] == first.pid  # written once, by the process that died
