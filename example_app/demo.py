"""``make demo``: the example app end to end against a real broker.

Applies the topology, starts the consumers as a real ``hubbub consume``
process, publishes the seed's events, prints what each action did, then
stops the consumers with SIGTERM (they drain and exit 0).

Nobody waits 3 days in a demo: it writes a copy of topology.yaml where
``inactivity-reminder`` has ``delay: 2s`` (next to its outbox) and runs on
that file, as a non-developer would edit it. Applying topology.yaml again
afterwards brings the 3d delay back (the 2s wait queue drains, and a later
apply deletes it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from example_app import inactivity, outbox
from hubbub import Hub, HubbubError
from hubbub.connection import mask, resolve_urls
from hubbub.topology import loader
from hubbub.topology.durations import parse_duration

HERE = Path(__file__).parent
TOPOLOGY = HERE / "topology.yaml"

EVENTS = [
    ("user.signed_up", {"user_id": 1, "name": "Alice", "email": "alice@example.com"}),
    ("user.first_action.uploaded_photo", {"user_id": 1}),
    ("billing.invoice.paid", {"user_id": 1, "amount": 42}),
    ("user.deleted", {"user_id": 2, "reason": "moved to a competitor"}),
]
#: welcome-email, its audit line, notify-sales twice, notify-support, and the
#: inactivity reminder for user 1 once its delay passed since user 1's latest activity.
EXPECTED_ACTIONS = 6
#: The inactivity reminder's delay in the demo (3d in topology.yaml).
DEMO_DELAY = "2s"


def demo_topology(path: Path) -> Path:
    """Write topology.yaml to ``path``, inactivity-reminder's ``delay: 3d`` made :data:`DEMO_DELAY`.

    The one line edited as a person would edit it: the comments stay.
    """
    text, edits = re.subn(r"(?m)^(    delay: )3d\b", rf"\g<1>{DEMO_DELAY}", TOPOLOGY.read_text())
    if edits != 1:
        raise HubbubError(f"{TOPOLOGY} should have one 'delay: 3d' line (the demo shortens it)")
    path.write_text(text)
    if loader.load(path).subscriber("inactivity-reminder").delay != parse_duration(DEMO_DELAY):
        raise HubbubError(f"{TOPOLOGY}'s 'delay: 3d' line is not inactivity-reminder's")
    return path


def main() -> int:
    os.environ.setdefault("HUBBUB_OUTBOX", str(Path("outbox") / "demo.jsonl"))
    outbox.path().unlink(missing_ok=True)
    inactivity.db_path().unlink(missing_ok=True)
    outbox.path().parent.mkdir(parents=True, exist_ok=True)
    topology = demo_topology(outbox.path().with_name("demo-topology.yaml"))
    print(f"broker: {mask(', '.join(resolve_urls()))}")
    hub = Hub.from_file(topology)
    hub.apply()
    print(
        f"applied {topology} (topology.yaml with inactivity-reminder's delay: {DEMO_DELAY} "
        f"instead of 3d): hub {hub.name!r} with "
        f"{', '.join(s.name for s in hub.topology.subscribers)}"
    )
    consumer = subprocess.Popen(
        [sys.executable, "-m", "hubbub.cli.main", "consume", "--file", str(topology)],
        env={**os.environ, "HUBBUB_LOG_LEVEL": os.environ.get("HUBBUB_LOG_LEVEL", "WARNING")},
    )
    try:
        for topic, data in EVENTS:
            event_id = hub.publish(topic, data)
            print(f"published {topic:<34} {event_id}")
        print(
            f"inactivity-reminder gets each activity {DEMO_DELAY} after it "
            "(it waits in the broker, in the subscriber's wait queue)"
        )
        actions = wait_for_actions(EXPECTED_ACTIONS, timeout=30)
    finally:
        consumer.send_signal(signal.SIGTERM)
        code = consumer.wait(timeout=60)
        hub.close()
    print("\nwhat the actions did:")
    for record in actions:
        action = record.pop("action")
        record.pop("event_id", None)
        print(f"  {action:<19} {record}")
    print(f"\nconsumers stopped with exit code {code}")
    return 0 if code == 0 and len(actions) >= EXPECTED_ACTIONS else 1


def wait_for_actions(count: int, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        actions = outbox.read()
        if len(actions) >= count:
            return actions
        time.sleep(0.1)
    actions = outbox.read()
    print(f"only {len(actions)} of {count} actions happened within {timeout}s", file=sys.stderr)
    return actions


def run() -> int:
    """:func:`main`, with any hubbub error as one clear line (no traceback)."""
    try:
        return main()
    except HubbubError as exc:
        print(f"error: {mask(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
