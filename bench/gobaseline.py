"""The Go PerfTest-style baseline (``bench/go/perftest``), built on demand.

The issue measures hubbub against a Go client (amqp091-go) publishing and
consuming PerfTest-style. Building it needs Go and amqp091-go, which
``make bench-deps`` installs from Debian's packages (``golang-go``,
``golang-github-rabbitmq-amqp091-go-dev``; GOPATH mode, no module download).
Without them the suite says so and compares with raw pika alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from bench import perfkit

SOURCE = Path(__file__).parent / "go" / "perftest"
BINARY = SOURCE / "perftest"
#: Where Debian's ``golang-*-dev`` packages put their sources.
GOPATH = "/usr/share/gocode"


@cache
def binary() -> Path | None:
    """The built baseline (rebuilt when its source changed); None, saying why, without Go."""
    go = shutil.which("go")
    if go is None:
        print("no Go toolchain: the Go baseline is left out (make bench-deps)", file=sys.stderr)
        return None
    source = SOURCE / "main.go"
    if BINARY.exists() and BINARY.stat().st_mtime >= source.stat().st_mtime:
        return BINARY
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": ""}
    built = subprocess.run(
        [go, "build", "-o", str(BINARY), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        print(
            f"cannot build the Go baseline (make bench-deps): {built.stderr.strip()}",
            file=sys.stderr,
        )
        return None
    return BINARY


def command(*args: str) -> list[str]:
    """Run the Go baseline with ``args`` and the suite's message body."""
    path = binary()
    assert path is not None, "check gobaseline.binary() first"
    return [str(path), *args, "--body", perfkit.body().decode()]
