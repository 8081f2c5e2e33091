"""``hubbub console``: serve the operators' web console (thin; see :mod:`hubbub.console`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from hubbub.admin import Admin
from hubbub.cli.dlq import broker_options
from hubbub.cli.options import friendly_errors, hub_from
from hubbub.errors import ConfigurationError

log = logging.getLogger(__name__)


@click.command("console")
@broker_options
@click.option(
    "--host",
    envvar="HUBBUB_CONSOLE_HOST",
    show_envvar=True,
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; beyond loopback it needs authentication.",
)
@click.option(
    "--port", envvar="HUBBUB_CONSOLE_PORT", show_envvar=True, default=8470, show_default=True
)
@click.option(
    "--read-only",
    envvar="HUBBUB_CONSOLE_READ_ONLY",
    show_envvar=True,
    is_flag=True,
    help="Show everything, change nothing (no replay, edit or purge).",
)
@click.option(
    "--root-path",
    envvar="HUBBUB_CONSOLE_ROOT_PATH",
    show_envvar=True,
    default="",
    help="The path prefix a reverse proxy serves the console under, e.g. /hubbub.",
)
@friendly_errors
def command(
    file: Path | None,
    hub: str | None,
    url: str | None,
    host: str,
    port: int,
    read_only: bool,
    root_path: str,
) -> None:
    """Serve the web console: hub overview, dead letters, replay and purge.

    Credentials come from the environment: HUBBUB_CONSOLE_TOKEN, or
    HUBBUB_CONSOLE_USER and HUBBUB_CONSOLE_PASSWORD (required beyond loopback).
    """
    try:
        import uvicorn

        from hubbub.console import ConsoleSettings, auth_from_env, check_bind, create_app
        from hubbub.console.service import CHUNKS, ConsoleService
        from hubbub.console.settings import secret_from_env
    except ImportError as exc:
        raise ConfigurationError(
            f"the console needs its extra dependencies ({exc.name} is missing): "
            "pip install 'hubbub[console]'"
        ) from exc
    auth = auth_from_env(os.environ)
    check_bind(host, auth)
    name, topology = hub_from(file, hub)
    settings = ConsoleSettings(auth=auth, read_only=read_only, secret=secret_from_env(os.environ))
    app = create_app(ConsoleService(Admin(topology or name, url=url, chunks=CHUNKS)), settings)
    log.info(
        "console for hub %s on http://%s:%d%s (%s%s)",
        name, host, port, root_path, f"login by {auth.kind}" if auth else "no login: loopback only",
        ", read-only" if read_only else "",
    )  # fmt: skip
    uvicorn.run(
        app,
        host=host,
        port=port,
        root_path=root_path.rstrip("/"),
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )
