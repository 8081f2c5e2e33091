"""``hubbub topology validate | plan | apply | destroy``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from hubbub.admin.archive import Archive
from hubbub.cli.archive import replay_started
from hubbub.cli.options import file_option, friendly_errors, topology_from, url_option, urls
from hubbub.connection import mask
from hubbub.topology import loader
from hubbub.topology.destroy import DestroyRefusedError
from hubbub.topology.model import Topology
from hubbub.topology.plan import Plan
from hubbub.topology.sync import Review, apply_review, destroy, make_review, make_teardown


@click.group("topology")
def group() -> None:
    """Validate the topology file, and plan or apply it on the broker."""


@group.command("validate")
@file_option
@friendly_errors
def validate(file: Path | None) -> None:
    """Check the file without a broker: patterns, names, keys; every handler imported and
    checked (one argument, the event; not a generator), its settings validated against
    its settings parameter; every dont_retry name an exception. What depends on where it
    runs (an unset secret_env variable) is a warning: 'consume' refuses to start without it."""
    topology = topology_from(file, check_handlers=True, environment=False)
    assert file is not None  # topology_from refuses None
    for warning in loader.environment_warnings(file, topology):
        click.echo(
            f"warning: {mask(warning)} ('hubbub consume' refuses to start without it)", err=True
        )
    click.echo(f"{file}: valid: hub {topology.hub!r}, {len(topology.subscribers)} subscriber(s)")


#: ``plan --detailed-exitcode``: the broker differs from the file (terraform's convention).
CHANGES_PENDING = 2


@group.command("plan")
@file_option
@url_option
@click.option("--verbose", "-v", is_flag=True, help="List every ladder object too.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when apply would change something, on the broker or in what it records "
    "(0: nothing, 1: error or conflict).",
)
@friendly_errors
def plan(file: Path | None, url: str | None, verbose: bool, detailed_exitcode: bool) -> None:
    """Say what the change means, then what 'apply' would create, change or remove."""
    review = make_review(topology_from(file), urls(url))
    assert review.plan is not None  # make_review raises without the management API
    click.echo(meaning(review))
    click.echo("On the broker:")
    click.echo(review.plan.describe(verbose=verbose))
    if review.plan.conflicts:
        raise SystemExit(1)
    if detailed_exitcode and not (review.plan.empty and not review.explain()):
        raise SystemExit(CHANGES_PENDING)


def meaning(review: Review) -> str:
    """The plain-words part of ``plan`` and ``apply``: one line per sentence."""
    since = f" (compared with what was {review.applied.describe()})" if review.applied else ""
    sentences = review.explain()
    if not sentences:
        return f"What this change means: nothing changes for the subscribers{since}."
    return "\n".join([f"What this change means{since}:", *(f"  - {s}" for s in sentences)])


@group.command("apply")
@file_option
@url_option
@click.option("--verbose", "-v", is_flag=True, help="List every ladder object too.")
@friendly_errors
def apply_(file: Path | None, url: str | None, verbose: bool) -> None:
    """Declare the hub, subscriber queues, dead-letter queues and delay ladder (idempotent),
    and record on the broker what was applied (for the next 'plan')."""
    topology = topology_from(file)
    review = apply_review(topology, urls(url), file=file.name if file else None)
    bound_at = datetime.now(timezone.utc)
    click.echo(meaning(review))
    result = review.plan
    if result is None:
        click.echo("applied (management API unreachable: stale bindings were not checked)")
        if any(s.backfill for s in topology.subscribers):
            click.echo(
                "no backfill: without the management API apply cannot tell which subscribers "
                "are new; backfill one with: hubbub archive replay --to NAME --since 7d"
            )
        return
    done = [c for c in result.changes if c.action in ("create", "remove")]
    if result.changes:
        click.echo("On the broker:")
        click.echo(result.describe(verbose=verbose))
    click.echo(f"applied hub {topology.hub!r}: {len(done)} change(s)")
    _backfill(topology, url, result, bound_at)


def _backfill(topology: Topology, url: str | None, plan: Plan, bound_at: datetime) -> None:
    """Start each new subscriber with ``backfill:`` with the archive's events of its window."""
    archive = Archive(topology, url=url)
    for sub in archive.to_backfill(plan):
        assert sub.backfill is not None
        since = bound_at - timedelta(seconds=sub.backfill)
        click.echo(
            f"backfilling {sub.name} with the archive's events since "
            f"{since.isoformat(timespec='seconds')}"
        )
        report = archive.backfill(sub.name, since, bound_at, on_start=replay_started)
        seam = f", {report.skipped} already received live" if report.skipped else ""
        click.echo(f"backfilled {sub.name}: {report.copied} event(s){seam}")


@group.command("destroy")
@file_option
@url_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Delete queues that hold events, and the events.")
@click.option("--verbose", "-v", is_flag=True, help="List every ladder object too.")
@friendly_errors
def destroy_(file: Path | None, url: str | None, yes: bool, force: bool, verbose: bool) -> None:
    """Delete the hub's exchanges and queues, delay ladder included (asks first).

    Refuses, before deleting anything, when a queue holds events, unless --force.
    """
    topology = topology_from(file)
    brokers = urls(url)
    target = make_teardown(topology, brokers)
    if target.empty:
        click.echo(target.describe())
        return
    if not force and (why := target.refusal()) is not None:
        raise DestroyRefusedError(why)
    click.echo(target.describe(verbose=verbose))
    lost = f", deleting {target.events} event(s)" if target.events else ""
    if not yes and not click.confirm(
        f"Destroy hub {topology.hub!r}: remove the {len(target.queues)} queue(s) and "
        f"{len(target.exchanges)} exchange(s) above{lost}?"
    ):
        click.echo("nothing removed")
        return
    removed = destroy(target, brokers, force=force)
    deleted = f", {removed.events} event(s) deleted" if removed.events else ""
    click.echo(
        f"destroyed hub {topology.hub!r}: removed {len(removed.queues)} queue(s) and "
        f"{len(removed.exchanges)} exchange(s){deleted}"
    )
