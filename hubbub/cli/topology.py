"""``hubbub topology validate | plan | apply``."""

from __future__ import annotations

from pathlib import Path

import click

from hubbub.cli.options import file_option, friendly_errors, topology_from, url_option, urls
from hubbub.topology import apply, make_plan


@click.group("topology")
def group() -> None:
    """Validate the topology file, and plan or apply it on the broker."""


@group.command("validate")
@file_option
@friendly_errors
def validate(file: Path | None) -> None:
    """Check the file (patterns, names, keys, handler imports) without a broker."""
    topology = topology_from(file, check_handlers=True)
    click.echo(f"{file}: valid: hub {topology.hub!r}, {len(topology.subscribers)} subscriber(s)")


@group.command("plan")
@file_option
@url_option
@click.option("--verbose", "-v", is_flag=True, help="List every ladder object too.")
@friendly_errors
def plan(file: Path | None, url: str | None, verbose: bool) -> None:
    """Show what 'apply' would create, change or remove on the broker."""
    result = make_plan(topology_from(file), urls(url))
    click.echo(result.describe(verbose=verbose))
    if result.conflicts:
        raise SystemExit(1)


@group.command("apply")
@file_option
@url_option
@friendly_errors
def apply_(file: Path | None, url: str | None) -> None:
    """Declare the hub, subscriber queues, dead-letter queues and delay ladder (idempotent)."""
    topology = topology_from(file)
    result = apply(topology, urls(url))
    if result is None:
        click.echo("applied (management API unreachable: stale bindings were not checked)")
        return
    done = [c for c in result.changes if c.action in ("create", "remove")]
    for change in done:
        click.echo(str(change))
    for change in result.changes:
        if change.action == "obsolete":
            click.echo(str(change))
    click.echo(f"applied hub {topology.hub!r}: {len(done)} change(s)")
