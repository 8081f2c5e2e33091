"""Run the suite's scripts as processes of their own and collect their results.

Each measured client runs in a fresh Python process (``python -m bench.X``),
so no run inherits threads, connections or garbage from another, and a
hubbub run and its raw pika counterpart start from the same state. The
queue is purged before every run.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from bench import perfkit

#: Seconds a single benchmark process may take before the suite gives up on it.
PROCESS_TIMEOUT = 600.0


class BenchError(RuntimeError):
    """A benchmark process failed or printed no result."""


@dataclass
class Context:
    """Where the suite runs: broker URL and the hub it declared."""

    url: str
    hub: str

    @property
    def queue(self) -> str:
        return f"{self.hub}.{perfkit.SUBSCRIBER}"

    def common(self, events: int) -> list[str]:
        return ["--url", self.url, "--hub", self.hub, "--events", str(events)]


def command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"bench.{module}", *args]


def run(argv: Sequence[str]) -> dict[str, Any]:
    """Run one benchmark process to its end; its RESULT."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=False
    )
    return _result(argv, done.returncode, done.stdout, done.stderr)


@dataclass
class Background:
    """A benchmark process running beside others (a consumer, usually)."""

    argv: Sequence[str]
    process: subprocess.Popen[str] = field(init=False)
    progress: int = 0
    lines: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.lines.append(line)
            if line.startswith(perfkit.READY):
                self._ready.set()
            elif line.startswith("PROGRESS "):
                self.progress = int(line.split()[1])

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                what = " ".join(self.argv[2:])
                raise BenchError(f"{what} never started consuming: {self._err()}")

    def finish(self, timeout: float = PROCESS_TIMEOUT) -> dict[str, Any]:
        """Close its stdin (the stop signal of ``--events 0`` runs) and wait for its RESULT."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"{' '.join(self.argv[2:])} did not finish") from None
        time.sleep(0.05)  # let the reader thread take the last lines
        return _result(self.argv, code, "".join(self.lines), self._err())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _err(self) -> str:
        assert self.process.stderr is not None
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read()[-2000:]


def _result(argv: Sequence[str], code: int, stdout: str, stderr: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        result = perfkit.parse_result(line)
        if result is not None and code == 0:
            return result
    raise BenchError(f"{' '.join(argv[2:])} failed (exit {code}): {stderr[-2000:]}")
