"""A private PostgreSQL cluster for tests that stop or restart the database.

The machine's PostgreSQL (5432) is shared and never stopped: a test that
breaks the inbox's database breaks one of its own, made with the locally
installed ``initdb`` in a temporary directory and started with ``pg_ctl`` on
a free port (trust auth, no Unix socket, fsync off). It boots in about a
second. As root it runs as the ``postgres`` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hubbub.errors import HubbubError
from tests.support.process import free_port


class PostgresError(HubbubError):
    """A private test cluster could not be made, started or stopped."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (``HUBBUB_TEST_PG_BIN`` overrides)."""
    given = os.environ.get("HUBBUB_TEST_PG_BIN")
    if given:
        return Path(given)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresError("no initdb found: install PostgreSQL's server package")


class PrivatePostgres:
    """``with PrivatePostgres() as pg: pg.dsn``; :meth:`stop`, :meth:`start`, :meth:`restart`."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="hubbub-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> str:
        user = self._user
        result = subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.dir,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
        if result.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresError(
                f"{' '.join(argv)} failed ({result.returncode}): {result.stdout}{result.stderr}"
                f"\n{tail}"
            )
        return result.stdout

    def create(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= "
        options += "-c fsync=off -c full_page_writes=off -c max_connections=100"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop: ``fast`` ends the sessions (as a restart does), ``immediate`` crashes."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down: float = 0.0) -> None:
        """Stop (fast: every session is terminated), stay down ``down`` s, start again."""
        self.stop()
        time.sleep(down)
        self.start()

    def running(self) -> bool:
        try:
            self._run("pg_ctl", "-D", str(self.data), "status")
        except PostgresError:
            return False
        return True

    def __enter__(self) -> PrivatePostgres:
        try:
            return self.create().start()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
