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


def topology_from(
    file: Path | None, *, check_handlers: bool = False, environment: bool = True
) -> Topology:
    """The topology a command works on; a missing ``--file`` is a usage error.

    ``environment``: see :func:`hubbub.topology.loader.load`.
    """
    if file is None:
        raise click.UsageError("give a topology file with --file (or HUBBUB_TOPOLOGY)")
    if check_handlers:
        app_on_path()
    return loader.load(file, check_handlers=check_handlers, environment=environment)


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


LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)
LOG_FORMATS = click.Choice(["text", "json"], case_sensitive=False)
_LOGGING = "hubbub.logging"  # the settings in force, in click's ctx.meta


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Log to stderr (text or JSON lines, passwords masked): see :mod:`hubbub.logs`."""
    level = level or os.environ.get("HUBBUB_LOG_LEVEL")
    fmt = fmt or os.environ.get("HUBBUB_LOG_FORMAT")
    logs.setup(level, fmt)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.meta[_LOGGING] = {"level": level, "fmt": fmt}


def _relog(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            settings = {**ctx.meta.get(_LOGGING, {}), key: value}
            setup_logging(settings.get("level"), settings.get("fmt"))

    return callback


def logging_options(func: F) -> F:
    """``--log-level`` and ``--log-format`` after the subcommand too; they win over the group's."""
    func = click.option(
        "--log-format",
        type=LOG_FORMATS,
        default=None,
        expose_value=False,
        callback=_relog("fmt"),
        help="text or json (as 'hubbub --log-format'; HUBBUB_LOG_FORMAT).",
    )(func)
    return click.option(
        "--log-level",
        type=LOG_LEVELS,
        default=None,
        expose_value=False,
        callback=_relog("level"),
        help="DEBUG, INFO, WARNING or ERROR (as 'hubbub --log-level'; HUBBUB_LOG_LEVEL).",
    )(func)
