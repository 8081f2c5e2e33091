"""A private RabbitMQ node for tests that stop, restart, kill or cluster a broker.

Such tests must never touch a shared broker, so :class:`RabbitNode` starts
one of its own from the locally installed RabbitMQ: its own node name, AMQP,
distribution and (optional) management ports, data and log directories,
config file and Erlang cookie, all under one temporary directory, running as
the current user. It boots in about 5 s on a 2-core machine (10 s with the
management plugin).

Clusters: give every node the same ``cookie`` and distinct names and ports,
then ``b.ctl("stop_app"); b.ctl("join_cluster", a.nodename); b.ctl("start_app")``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from hubbub.errors import HubbubError
from tests.support.process import free_port

#: Where Debian/Ubuntu install the real scripts (``/usr/sbin`` only has a
#: wrapper that switches to the ``rabbitmq`` user when run as root).
DEBIAN_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


class NodeError(HubbubError):
    """A private test node could not be started, stopped or commanded."""


class RabbitNode:
    """One RabbitMQ node of its own; ``with RabbitNode(...) as node: node.url``.

    Ports left out are picked free at construction (AMQP, Erlang distribution),
    and the default node name is unique, so two test runs on one machine
    never collide.

    Not thread-safe: drive a node from one thread. Every command waits for
    the node to reach the state it asks for, or raises :class:`NodeError`
    with the command's output and the tail of the node's log.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        port: int | None = None,
        dist_port: int | None = None,
        management_port: int | None = None,
        cookie: str | None = None,
        base_dir: str | Path | None = None,
        config: Sequence[str] = (),
        keep: bool = False,
    ) -> None:
        self.name = name or f"hubbub-test-{secrets.token_hex(4)}"
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self.management_port = management_port
        self.cookie = cookie or secrets.token_hex(16)
        self.config_lines = list(config)
        self.keep = keep
        self._own_dir = base_dir is None
        self.dir = Path(base_dir or tempfile.mkdtemp(prefix=f"hubbub-node-{self.name}-"))
        self.scripts = scripts_dir()

    # -- addresses --------------------------------------------------------

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        """AMQP URL of this node (guest may log in over the loopback interface)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def management_url(self) -> str | None:
        if self.management_port is None:
            return None
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def environment(self) -> dict[str, str]:
        """The environment in which RabbitMQ's own scripts (``rabbitmqctl``,
        ``rabbitmq-plugins``, ``rabbitmq-server``) act on this node alone, e.g. to
        run a shell script against it (put :attr:`scripts` first on ``PATH``)."""
        return self._env()

    @property
    def accepting(self) -> bool:
        """True while the node's AMQP port accepts connections."""
        return _answers(self.port)

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / f"{self.nodename}.log"

    # -- lifecycle --------------------------------------------------------

    def start(self, timeout: float = 90.0) -> RabbitNode:
        """Boot the node and wait until RabbitMQ and its plugins run."""
        self._write_files()
        if _answers(self.port):
            raise NodeError(f"port {self.port} is already in use: choose another for {self.name}")
        self.pid_file.unlink(missing_ok=True)
        self._run(self.scripts / "rabbitmq-server", ["-detached"], timeout=30)
        self.ctl("wait", str(self.pid_file), "--timeout", str(int(timeout)), timeout=timeout + 10)
        self._wait_port(open_=True, timeout=timeout)
        return self

    def stop(self) -> None:
        """Stop the node (and its Erlang VM); its directory goes too unless ``keep``."""
        if self.pid_file.exists():
            try:
                self.ctl("stop", str(self.pid_file), timeout=60)
            except NodeError:
                self.kill()
        if self._own_dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def stop_app(self) -> None:
        """Stop RabbitMQ inside the running VM: clients are disconnected, the port closes."""
        self.ctl("stop_app")
        self._wait_port(open_=False, timeout=30)

    def start_app(self, timeout: float = 60.0) -> None:
        """Start RabbitMQ again after :meth:`stop_app` and wait until it accepts clients."""
        self.ctl("start_app", timeout=timeout)
        self._wait_port(open_=True, timeout=timeout)

    def kill(self) -> None:
        """kill -9 the node's VM (a crash, for failover tests)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <this node> ARGS``; returns its output."""
        return self._run(self.scripts / "rabbitmqctl", ["-n", self.nodename, *args], timeout)

    def __enter__(self) -> RabbitNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.dir),  # the Erlang cookie of the node and of its CLI
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.dir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def _write_files(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cookie = self.dir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)
        config = [f"listeners.tcp.local = 127.0.0.1:{self.port}", *self.config_lines]
        plugins = "[]."
        if self.management_port is not None:
            config += [
                f"management.tcp.port = {self.management_port}",
                "management.tcp.ip = 127.0.0.1",
            ]
            plugins = "[rabbitmq_management]."
        (self.dir / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        (self.dir / "enabled_plugins").write_text(plugins + "\n")
        (self.dir / "rabbitmq-env.conf").write_text("# hubbub private test node\n")

    def _run(self, program: Path, args: list[str], timeout: float) -> str:
        try:
            done = subprocess.run(
                [str(program), *args],
                env=self._env(),
                cwd=self.dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise NodeError(f"{program.name} {' '.join(args)} timed out{self._log_tail()}") from exc
        if done.returncode != 0:
            raise NodeError(
                f"{program.name} {' '.join(args)} failed ({done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-1500:]}{self._log_tail()}"
            )
        return done.stdout

    def _wait_port(self, *, open_: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while _answers(self.port) != open_:
            if time.monotonic() > deadline:
                state = "open" if open_ else "close"
                raise NodeError(f"port {self.port} did not {state} in {timeout:g}s")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return ""
        return "\nnode log:\n" + "\n".join(lines)


def scripts_dir() -> Path:
    """The directory of the real ``rabbitmq-server`` and ``rabbitmqctl`` scripts."""
    override = os.environ.get("HUBBUB_RABBITMQ_SCRIPTS")
    for candidate in (Path(override) if override else None, DEBIAN_SCRIPTS):
        if candidate is not None and (candidate / "rabbitmq-server").exists():
            return candidate
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise NodeError(
            "RabbitMQ is not installed: install the rabbitmq-server package "
            "(or set HUBBUB_RABBITMQ_SCRIPTS to its scripts directory)"
        )
    return Path(found).parent


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
