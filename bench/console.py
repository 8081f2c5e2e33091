"""The console with a large dead-letter queue: response times and the server's memory.

Prints figures; it is not a test. Against the broker in ``--url`` (default
``HUBBUB_URL`` or the local one) it fills one subscriber's dead-letter
queue with ``--events`` failed events (as :mod:`bench.dlq` does), starts
``hubbub console`` in a process of its own, and times, over HTTP:

- the overview (``/``) and its refresh fragment, five times each;
- the first page of dead letters, oldest first (answered once its 50 rows
  are read; the pass then goes on in the background to count the groups);
- the groups (waits for that pass to end: a full read of the queue);
- the first page again, the overview *while* that pass runs, a page newest
  first (a full pass), one event's page;

and samples the console process's resident memory (``VmRSS``) after each
step, and its peak (``VmHWM``) at the end. Then it reads the queue back to
check every event is still there, in order, and deletes everything.

    .venv/bin/python -m bench.console                  # 100,000 events
    .venv/bin/python -m bench.console --events 20000
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench.dlq import check_intact, fill
from hubbub.connection import resolve_urls
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader
from tests.support.process import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    url = resolve_urls(args.url)[0]
    print(f"uptime: {uptime()}; {os.cpu_count()} CPUs")
    hub = unique_name("bench-console")
    topology = loader.from_mapping(
        {"hub": hub, "subscribers": {"work": {"handler": "x:y", "topics": ["#"]}}}
    )
    apply(topology, [url])
    console = None
    try:
        ids = fill(url, topology, args.events)
        port = free_port()
        console = subprocess.Popen(
            [sys.executable, "-m", "hubbub.cli.main", "--log-level", "WARNING", "console",
             "--hub", hub, "--url", url, "--port", str(port)],
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_up(base)
        memory = Memory(console.pid)
        memory.sample("started")
        timed(base, "/", "overview", repeat=5)
        timed(base, "/fragment/overview", "overview refresh fragment", repeat=5)
        memory.sample("overviews")
        timed(base, "/dlq/work", "first page of dead letters, oldest first (queue never read)")
        timed(base, "/dlq/work/groups", "groups by exception (waits for the whole pass)")
        memory.sample("first full pass")
        during = threading.Thread(
            target=timed, args=(base, "/dlq/work?page=2", "second page (redelivered queue)")
        )
        during.start()
        time.sleep(0.5)
        timed(base, "/", "overview while a pass runs", repeat=3)
        during.join()
        timed(base, "/dlq/work/groups", "groups (after the pass)")
        memory.sample("second pass")
        timed(base, "/dlq/work?order=newest", "first page, newest first (a full pass)")
        memory.sample("newest first")
        timed(base, f"/dlq/work/events/{ids[5]}", "one event's page (found near the head)")
        timed(base, "/dlq/work/groups", "groups (after the pass)")
        memory.sample("event page")
        print(f"console peak RSS (VmHWM): {memory.peak():.0f} MiB")
        console.terminate()
        console.wait(30)
        check_intact(url, topology, ids)
    finally:
        if console is not None and console.poll() is None:
            console.kill()
        delete_hub(url, topology)
    print(f"uptime: {uptime()}")


def timed(base: str, path: str, what: str, *, repeat: int = 1) -> None:
    took = []
    for _ in range(repeat):
        started = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=600) as answer:
            body = answer.read()
        took.append(time.perf_counter() - started)
    figures = f"{took[0]:.3f} s" if repeat == 1 else (
        f"median {statistics.median(took):.3f} s, max {max(took):.3f} s over {repeat}"
    )  # fmt: skip
    print(f"{what}: {figures} ({len(body) / 1024:.0f} KiB)")


def wait_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Memory:
    """The console process's resident memory, from /proc."""

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")

    def _kib(self, field: str) -> int:
        found = re.search(rf"^{field}:\s+(\d+) kB", self.status.read_text(), re.M)
        return int(found.group(1)) if found else 0

    def sample(self, when: str) -> None:
        print(f"  console RSS after {when}: {self._kib('VmRSS') / 1024:.0f} MiB")

    def peak(self) -> float:
        return self._kib("VmHWM") / 1024


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


if __name__ == "__main__":
    main()
