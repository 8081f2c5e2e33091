"""``hubbub topology apply`` then ``hubbub consume`` in child processes: a ``delay: 5s`` subscriber.

One file, two subscribers of the same topic: ``now`` gets each event at
once, ``later`` (``delay: 5s``) gets it 5 s after it was published, never
before. The app module is written to the test's directory; each handler
appends one JSON line (subscriber, event number, time) in one ``write``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from core_support import consumers_of, consuming, depth, terminate, wait_until

from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub
from hubbub.topology import loader
from tests.support.recording import written_lines

pytestmark = pytest.mark.integration

#: The subscriber's delay, and how far from it an arrival may be on a loaded CI box.
DELAY, MARGIN = 5.0, 1.5

APP = """
import json
import os
import time


def seen(event):
    line = {"sub": event.subscriber, "n": event.data["n"], "topic": event.topic,
            "attempt": event.attempt, "at": time.time()}
    fd = os.open(os.environ["DELAY_APP_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (json.dumps(line) + "\\n").encode())
    finally:
        os.close(fd)
"""


def lines(path: Path, sub: str) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in written_lines(path)]
    return [r for r in rows if r["sub"] == sub]


def test_a_delay_5s_subscriber_gets_each_event_5_s_after_it_was_published(
    tmp_path, hub_name, broker_url
):
    spec = {
        "hub": hub_name,
        "subscribers": {
            "now": {"handler": "delay_app:seen", "topics": ["user.active"]},
            "later": {"handler": "delay_app:seen", "topics": ["user.active"], "delay": "5s"},
        },
    }
    file = tmp_path / "topology.yaml"
    file.write_text(yaml.safe_dump(spec))
    (tmp_path / "delay_app.py").write_text(APP)
    log = tmp_path / "seen.jsonl"
    names = loader.from_mapping(spec).names
    env = {**os.environ, "HUBBUB_URL": broker_url}
    try:
        applied = subprocess.run(
            [sys.executable, "-m", "hubbub.cli.main", "topology", "apply", "--file", str(file)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert applied.returncode == 0, applied.stderr
        assert f"hubbub.v1.{hub_name}.wait.later.5s" in applied.stdout + applied.stderr

        run = {"url": broker_url, "cwd": tmp_path, "DELAY_APP_LOG": str(log)}
        with consuming("-f", str(file), **run) as process:
            # consuming when it consumes: what is timed is the delay, not the start
            queues = {names.queue("now"), names.queue("later")}
            wait_until(lambda: len(consumers_of(broker_url, queues)) == 2, 30, "both consuming")
            published = []
            with Publisher(hub_name, url=broker_url) as publisher:
                for n in range(4):
                    # taken before the publish: the broker stores the event after it,
                    # so the wait measured from it is never shorter than the delay
                    published.append(time.time())
                    publisher.publish("user.active", {"n": n})
                    time.sleep(0.7)
            wait_until(lambda: len(lines(log, "later")) >= 4, DELAY + 2 * MARGIN + 3, "all 4 late")
            time.sleep(0.5)  # nothing more may come
            stderr = terminate(process)
        assert process.returncode == 0, stderr

        now, later = lines(log, "now"), lines(log, "later")
        assert sorted(r["n"] for r in now) == [0, 1, 2, 3]
        assert sorted(r["n"] for r in later) == [0, 1, 2, 3]  # each once
        for r in now:
            assert r["at"] - published[r["n"]] <= MARGIN, r  # at once (~1 s on a loaded box)
        for r in later:
            waited = r["at"] - published[r["n"]]
            assert DELAY - 0.05 <= waited <= DELAY + MARGIN, (r, waited)  # never before
            assert (r["topic"], r["attempt"]) == ("user.active", 1)
        assert depth(broker_url, names.wait_queue("later", 5)) == 0
        assert depth(broker_url, names.queue("later")) == 0
    finally:
        delete_hub(broker_url, loader.from_mapping(spec))
