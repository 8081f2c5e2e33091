"""``hubbub``: the command line. Thin: each command parses options and calls the library."""

from __future__ import annotations

import os
import sys

import click

from hubbub.cli import archive, console, consume, dlq, health, publish, status, topology
from hubbub.cli.options import LOG_FORMATS, LOG_LEVELS, setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    envvar="HUBBUB_LOG_LEVEL",
    show_envvar=True,
    default="INFO",
    type=LOG_LEVELS,
)
@click.option(
    "--log-format",
    envvar="HUBBUB_LOG_FORMAT",
    show_envvar=True,
    default="text",
    type=LOG_FORMATS,
    help="json: one JSON object per line, with event_id, topic, subscriber, attempt.",
)
@click.version_option(package_name="hubbub")
def cli(log_level: str, log_format: str) -> None:
    """hubbub: RabbitMQ as the event hub of an application."""
    setup_logging(log_level, log_format)


cli.add_command(topology.group)
cli.add_command(publish.command)
cli.add_command(consume.command)
cli.add_command(health.command)
cli.add_command(dlq.group)
cli.add_command(archive.group)
cli.add_command(status.command)
cli.add_command(console.command)


def main() -> None:
    _refuse_undecodable(sys.argv[1:])
    cli(prog_name="hubbub")


def _refuse_undecodable(args: list[str]) -> None:
    """Exit with one line when an argument's bytes are not UTF-8 (no traceback later).

    Python hands such bytes over as lone surrogates, which no topic, JSON
    or header can carry; the raw bytes say what the user typed.
    """
    for position, arg in enumerate(args, 1):
        try:
            arg.encode()
        except UnicodeEncodeError:
            raw = os.fsencode(arg)
            click.echo(
                f"error: argument {position} ({raw!r}) is not valid UTF-8: "
                "pass UTF-8 text (check the terminal's or the script's encoding)",
                err=True,
            )
            sys.exit(2)


if __name__ == "__main__":
    main()
