"""``hubbub archive stats | show | replay | replays``: the hub's archive, thin over
:mod:`hubbub.admin.archive`."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from hubbub.admin.archive import Archive, ArchivedEvent, ReplayPlan, ReplayReport, Window
from hubbub.admin.filters import parse_since
from hubbub.cli import tables
from hubbub.cli.dlq import NOTHING_TO_DO, broker_options, limit_option, rate_from
from hubbub.cli.options import friendly_errors, hub_from
from hubbub.errors import ConfigurationError
from hubbub.topology.sizes import format_size

#: Events ``archive show`` prints unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 50


def archive_from(file: Path | None, hub: str | None, url: str | None) -> Archive:
    name, topology = hub_from(file, hub)
    return Archive(topology or name, url=url)


def window_from(
    since: str | None, until: str | None, topics: tuple[str, ...], ids: tuple[str, ...] = ()
) -> Window:
    now = datetime.now(timezone.utc)
    moments = []
    for option, value in (("--since", since), ("--until", until)):
        try:
            moments.append(None if value is None else parse_since(value, now))
        except ValueError as exc:
            raise ConfigurationError(f"{option}: {exc}") from exc
    return Window(moments[0], moments[1], topics, frozenset(ids))


def window_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option(
        "--topic", "topics", multiple=True, help="Topic pattern, e.g. 'order.#' (repeatable)."
    )(func)
    func = click.option(
        "--until", default=None, help="Before this: an ISO date, or a duration back (1h)."
    )(func)
    func = click.option(
        "--since", default=None, help="From this: an ISO date, or a duration back (7d, 2h)."
    )(func)
    return func


@click.group("archive")
def group() -> None:
    """The hub's archive of every event: stats, show, replay to one subscriber."""


@group.command("stats")
@broker_options
@window_options
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@friendly_errors
def stats(
    file: Path | None,
    hub: str | None,
    url: str | None,
    since: str | None,
    until: str | None,
    topics: tuple[str, ...],
    as_json: bool,
) -> None:
    """The archive's retention, first and last event, and events per topic in a window."""
    window = window_from(since, until, topics)
    result = archive_from(file, hub, url).stats(window)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "stream": result.stream,
                    "arguments": dict(result.arguments),
                    "messages": result.messages,
                    "first": result.first.as_dict() if result.first else None,
                    "last": result.last.as_dict() if result.last else None,
                    "window": window.as_dict(),
                    "events": result.events,
                    "body_bytes": result.body_bytes,
                    "per_topic": dict(result.per_topic.most_common()),
                },
                default=str,
            )
        )
        return
    args = result.arguments
    bounds = [
        f"retention {args['x-max-age']}" if "x-max-age" in args else "",
        f"at most {format_size(args['x-max-length-bytes'])}"
        if "x-max-length-bytes" in args
        else "",
    ]
    click.echo(f"archive {result.stream} ({', '.join(b for b in bounds if b) or 'unbounded'})")
    counted = "unknown" if result.messages is None else str(result.messages)
    click.echo(f"messages: {counted} (the broker's count)")
    click.echo(f"first event: {_when(result.first)}")
    click.echo(f"last event: {_when(result.last)}")
    click.echo(
        f"in the window ({_describe(window)}): {result.events} event(s), "
        f"{format_size(result.body_bytes)} of data"
    )
    if result.per_topic:
        rows = [(topic, count) for topic, count in result.per_topic.most_common()]
        click.echo(tables.table(("TOPIC", "EVENTS"), rows))


@group.command("show")
@broker_options
@window_options
@click.option("--id", "ids", multiple=True, help="Event id (repeat for several).")
@limit_option(DEFAULT_LIMIT)
@click.option("--json", "as_json", is_flag=True, help="JSON array with headers and data.")
@friendly_errors
def show(
    file: Path | None,
    hub: str | None,
    url: str | None,
    since: str | None,
    until: str | None,
    topics: tuple[str, ...],
    ids: tuple[str, ...],
    limit: int,
    as_json: bool,
) -> None:
    """Archived events in a window, oldest first."""
    window = window_from(since, until, topics, ids)
    events = archive_from(file, hub, url).events(window, limit=limit or None)
    if as_json:
        for piece in tables.json_array(e.as_dict() for e in events):
            click.echo(piece)
        return
    if events:
        rows = [
            (e.offset, _time(e), e.id, " ".join(e.topics), tables.clip(_data(e), 60))
            for e in events
        ]
        click.echo(tables.table(("OFFSET", "TIME", "ID", "TOPICS", "DATA"), rows))
    reached = ", --limit reached" if limit and len(events) == limit else ""
    click.echo(f"{len(events)} event(s) shown ({_describe(window)}{reached})")


@group.command("replay")
@broker_options
@click.option("--to", "to", default=None, metavar="SUBSCRIBER", help="The one subscriber.")
@window_options
@click.option("--id", "ids", multiple=True, help="Event id (repeat for several).")
@click.option("--rate", default=None, help="At most this many per second: 100/s, 6000/m.")
@click.option("--dry-run", is_flag=True, help="Only count what would be replayed.")
@click.option("--resume", default=None, metavar="ID", help="Go on with an interrupted replay.")
@friendly_errors
def replay(
    file: Path | None,
    hub: str | None,
    url: str | None,
    to: str | None,
    since: str | None,
    until: str | None,
    topics: tuple[str, ...],
    ids: tuple[str, ...],
    rate: str | None,
    dry_run: bool,
    resume: str | None,
) -> None:
    """Copy archived events to one subscriber's queue (no other subscriber sees them).

    In archive order, each copy confirmed and marked as a replay. An
    interrupted replay goes on with --resume ID and copies nothing twice.
    Exits 3 when the window holds no event.
    """
    archive = archive_from(file, hub, url)
    if resume is not None:
        if to or since or until or topics or ids or rate or dry_run:
            raise ConfigurationError("--resume takes the rest from the replay: give it alone")
        report = archive.resume(resume)
        _done(report)
        return
    if to is None:
        raise ConfigurationError("say which subscriber receives the events: --to SUBSCRIBER")
    if since is None and not ids:
        raise ConfigurationError(
            "say which events: --since (e.g. 7d or an ISO date), or --id; "
            "'--since 3650d' replays the whole archive"
        )
    per_second = rate_from(rate)
    window = window_from(since, until, topics, ids)
    known = archive.topology.subscribers if archive.topology is not None else ()
    target = next((s for s in known if s.name == to), None)
    if target is not None and not target.idempotent:
        click.echo(
            f"note: {to} is not idempotent, so an event it handled already is handled again "
            "('idempotent: true' skips those: docs/inbox.md)"
        )
    report = archive.replay(
        to,
        window,
        rate=per_second,
        dry_run=dry_run,
        on_start=replay_started,
    )
    if dry_run:
        click.echo(
            f"would replay {report.matched} event(s) to {to} ({_describe(window)}): "
            f"{_when(report.first)} to {_when(report.last)}"
        )
    else:
        _done(report)
    if not report.matched:
        click.echo(f"nothing to replay: the archive holds no event in {_describe(window)}")
        sys.exit(NOTHING_TO_DO)


@group.command("replays")
@broker_options
@friendly_errors
def replays(file: Path | None, hub: str | None, url: str | None) -> None:
    """Replays that stopped before the end (resume them with replay --resume ID)."""
    found = archive_from(file, hub, url).unfinished()
    if not found:
        click.echo("no unfinished replay")
        return
    rows = [
        (plan.id, plan.to, _describe(plan.window), "none yet" if at is None else at)
        for plan, at in found
    ]
    click.echo(tables.table(("ID", "TO", "WINDOW", "LAST COPIED OFFSET"), rows))


def replay_started(plan: ReplayPlan) -> None:
    """Say a replay started, and how to go on with it if it is interrupted."""
    click.echo(
        f"replay {plan.id} to {plan.to} started; if it is interrupted, go on with: "
        f"hubbub archive replay --resume {plan.id}"
    )


def _done(report: ReplayReport) -> None:
    rate = report.copied / report.seconds if report.seconds > 0 else 0.0
    skipped = f", {report.skipped} already there" if report.skipped else ""
    resumed = (
        f" (resumed after offset {report.resumed_after})"
        if report.resumed_after is not None
        else ""
    )
    click.echo(
        f"replayed {report.copied} event(s) to {report.to}{skipped}{resumed} in "
        f"{report.seconds:.1f} s ({rate:.0f}/s)"
    )


def _describe(window: Window) -> str:
    parts = []
    if window.since:
        parts.append(f"since {window.since.isoformat(timespec='seconds')}")
    if window.until:
        parts.append(f"until {window.until.isoformat(timespec='seconds')}")
    if window.topics:
        parts.append(f"topics {', '.join(window.topics)}")
    if window.ids:
        parts.append(f"{len(window.ids)} id(s)")
    return ", ".join(parts) or "everything"


def _when(event: ArchivedEvent | None) -> str:
    if event is None:
        return "none"
    return f"{_time(event)} (offset {event.offset}, {' '.join(event.topics)})"


def _time(event: ArchivedEvent) -> str:
    return event.time.isoformat(timespec="seconds") if event.time else "?"


def _data(event: ArchivedEvent) -> str:
    data = event.data
    return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
