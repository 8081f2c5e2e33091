"""Options every broker-facing command shares, and how the CLI reports errors.

Precedence: built-in defaults, then environment (``HUBBUB_URL``,
``HUBBUB_TOPOLOGY``, ``HUBBUB_HUB``, ...), then command-line options.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hubbub import logs
from hubbub.connection import mask, resolve_urls
from hubbub.errors import HubbubError
from hubbub.topology import loader
from hubbub.topology.model import Topology

F = TypeVar("F", bound=Callable[..., Any])

url_option = click.option(
    "--url",
    envvar="HUBBUB_URL",
    show_envvar=True,
    default=None,
    help="Broker URL (comma-separate several nodes). Default amqp://guest:guest@localhost:5672/%2F",
)
file_option = click.option(
    "--file",
    "-f",
    "file",
    envvar="HUBBUB_TOPOLOGY",
    show_envvar=True,
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Topology file (YAML).",
)
hub_option = click.option(
    "--hub",
    envvar="HUBBUB_HUB",
    show_envvar=True,
    default=None,
    help="Hub (exchange) name, when no topology file is given.",
)


def topology_from(file: Path | None, *, check_handlers: bool = False) -> Topology:
    """The topology a command works on; a missing ``--file`` is a usage error."""
    if file is None:
        raise click.UsageError("give a topology file with --file (or HUBBUB_TOPOLOGY)")
    if check_handlers:
        app_on_path()
    return loader.load(file, check_handlers=check_handlers)


def app_on_path() -> None:
    """Let handler references name modules of the app the command runs in (the cwd)."""
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))


def hub_from(file: Path | None, hub: str | None) -> tuple[str, Topology | None]:
    """The hub name from ``--hub`` or from the topology file."""
    if file is not None:
        topology = loader.load(file)
        if hub and hub != topology.hub:
            raise click.UsageError(f"--hub {hub} differs from the file's hub {topology.hub}")
        return topology.hub, topology
    if hub:
        return hub, None
    raise click.UsageError("give --file topology.yaml or --hub NAME")


def urls(url: str | None) -> list[str]:
    return resolve_urls(url)


def friendly_errors(func: F) -> F:
    """Turn any HubbubError into one masked line on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HubbubError as exc:
            click.echo(f"error: {mask(str(exc))}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Log to stderr (text or JSON lines, passwords masked): see :mod:`hubbub.logs`."""
    logs.setup(
        level or os.environ.get("HUBBUB_LOG_LEVEL"), fmt or os.environ.get("HUBBUB_LOG_FORMAT")
    )
