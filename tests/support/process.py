"""Run ``hubbub consume`` (or any hubbub command) as a child process in tests.

Fault tests need real processes: ``kill -9`` and SIGTERM only mean something
to a process of its own. :class:`HubbubProcess` starts one with a given
environment, sends its output to a file (a pipe nobody reads would block
it), waits until its ``/healthz`` says it consumes, and signals, kills or
waits for it, failing with the process's own output when it misbehaves.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from hubbub.errors import HubbubError


class ProcessError(HubbubError):
    """A child hubbub process did not do what a test waited for."""


def free_port() -> int:
    """A TCP port nothing listens on right now (for --metrics-port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hubbub_command(*args: str) -> list[str]:
    """argv running the hubbub CLI of this interpreter (the ``hubbub`` entry point)."""
    return [sys.executable, "-m", "hubbub.cli.main", *args]


class HubbubProcess:
    """One child process; ``with HubbubProcess(argv, env=...) as p: p.wait_healthy()``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(os.environ if env is None else env)
        if metrics_port is not None:
            self.env["HUBBUB_METRICS_PORT"] = str(metrics_port)
        self.metrics_port = metrics_port or _int(self.env.get("HUBBUB_METRICS_PORT"))
        self.cwd = cwd
        fd, name = tempfile.mkstemp(prefix="hubbub-proc-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def _popen(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise ProcessError("the process was not started")
        return self._proc

    def start(self) -> HubbubProcess:
        with self.log_path.open("wb") as out:
            self._proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self._popen.poll() is None

    def healthy(self) -> bool:
        """True when its ``/healthz`` answers 200 (needs a metrics port)."""
        if self.metrics_port is None:
            raise ProcessError("healthy() needs a metrics port (HUBBUB_METRICS_PORT)")
        url = f"http://127.0.0.1:{self.metrics_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = 30.0) -> HubbubProcess:
        """Wait until the process reports itself consuming; fail fast if it exits."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if not self.running():
                raise ProcessError(
                    f"{self.argv} exited with {self._popen.returncode}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise ProcessError(f"{self.argv} not healthy after {timeout:g}s:\n{self.output()}")
            time.sleep(0.1)
        return self

    def metrics(self) -> str:
        """The process's Prometheus text."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self._popen.send_signal(signum)

    def kill(self) -> None:
        """kill -9: no clean-up, no acks, no goodbye to the broker."""
        self._popen.kill()
        self._popen.wait(10)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the exit code; ProcessError (with its output) on timeout."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise ProcessError(
                f"{self.argv} still runs after {timeout:g}s:\n{self.output()}"
            ) from exc

    def __enter__(self) -> HubbubProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self.log_path.unlink(missing_ok=True)


def _int(text: str | None) -> int | None:
    return int(text) if text else None
