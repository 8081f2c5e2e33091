"""``make demo``: the example app end to end against a real broker.

Applies the topology, starts the consumers as a real ``hubbub consume``
process, publishes the seed's events, prints what each action did, then
stops the consumers with SIGTERM (they drain and exit 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from example_app import inactivity, outbox
from hubbub import Hub, HubbubError
from hubbub.connection import mask, resolve_urls

HERE = Path(__file__).parent
TOPOLOGY = HERE / "topology.yaml"

EVENTS = [
    ("user.signed_up", {"user_id": 1, "name": "Alice", "email": "alice@example.com"}),
    ("user.first_action.uploaded_photo", {"user_id": 1}),
    ("billing.invoice.paid", {"user_id": 1, "amount": 42}),
    ("user.deleted", {"user_id": 2, "reason": "moved to a competitor"}),
]
#: welcome-email, its audit line, notify-sales twice, notify-support, and the
#: inactivity reminder for user 1 once INACTIVITY_AFTER passed since its latest activity.
EXPECTED_ACTIONS = 6


def main() -> int:
    os.environ.setdefault("HUBBUB_OUTBOX", str(Path("outbox") / "demo.jsonl"))
    os.environ.setdefault("INACTIVITY_AFTER", "2s")  # seconds in the demo, days in real life
    outbox.path().unlink(missing_ok=True)
    inactivity.db_path().unlink(missing_ok=True)
    print(f"broker: {mask(', '.join(resolve_urls()))}")
    hub = Hub.from_file(TOPOLOGY)
    hub.apply()
    print(
        f"applied {TOPOLOGY.name}: hub {hub.name!r} with "
        f"{', '.join(s.name for s in hub.topology.subscribers)}"
    )
    consumer = subprocess.Popen(
        [sys.executable, "-m", "hubbub.cli.main", "consume", "--file", str(TOPOLOGY)],
        env={**os.environ, "HUBBUB_LOG_LEVEL": os.environ.get("HUBBUB_LOG_LEVEL", "WARNING")},
    )
    try:
        for topic, data in EVENTS:
            event_id = hub.publish(topic, data)
            print(f"published {topic:<34} {event_id}")
        print(
            f"inactivity checks scheduled {os.environ['INACTIVITY_AFTER']} after each activity "
            "(they wait in the broker's delay ladder)"
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
