"""``hubbub status``: every queue of the hub, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hubbub.admin.status import HubStatus, QueueCounts
from hubbub.cli import tables
from hubbub.cli.dlq import admin_from, broker_options
from hubbub.cli.options import friendly_errors


@click.command("status")
@broker_options
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@friendly_errors
def command(file: Path | None, hub: str | None, url: str | None, as_json: bool) -> None:
    """Subscriber queues (ready, unacked, consumers), dead letters, unrouted, delayed."""
    status = admin_from(file, hub, url).status()
    if as_json:
        click.echo(json.dumps(status.to_json(), indent=2))
        return
    click.echo(render(status))


def render(status: HubStatus) -> str:
    """The status as the table ``hubbub status`` prints."""
    rows = [(s.subscriber, *_counts(s.queue), _depth(s.dead_letters)) for s in status.subscribers]
    lines = [
        f"hub {status.hub}  (counts from {status.source})",
        "",
        tables.table(("SUBSCRIBER", "READY", "UNACKED", "CONSUMERS", "DEAD LETTERS"), rows)
        if rows
        else "no subscribers",
        "",
        f"unrouted: {_depth(status.unrouted)}",
        f"delayed (in the ladder): {status.delayed if status.delayed is not None else '?'}",
        f"waiting (subscribers' delay:): {status.waiting if status.waiting is not None else '?'}",
    ]
    if not status.unrouted.exists:
        lines.append(f"note: hub {status.hub} has no queues here: run 'hubbub topology apply'")
    return "\n".join(lines)


def _counts(queue: QueueCounts) -> tuple[str, str, str]:
    if not queue.exists:
        return "missing", "-", "-"
    return _n(queue.ready), _n(queue.unacked), _n(queue.consumers)


def _depth(queue: QueueCounts) -> str:
    if not queue.exists:
        return "missing"
    if queue.unacked:
        return f"{_n(queue.ready)} (+{queue.unacked} unacked)"
    return _n(queue.ready)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)
