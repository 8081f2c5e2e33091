"""``hubbub dlq list | show | replay | purge``: failed events, thin over :mod:`hubbub.admin`.

NAME is a subscriber (its dead-letter queue) or ``unrouted`` (the hub's
queue of events no subscriber matched; a name no subscriber may take).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from hubbub.admin import Admin, FailedEvent, Selection, parse_rate, select
from hubbub.admin.edit import parse as parse_data
from hubbub.cli import tables
from hubbub.cli.options import file_option, friendly_errors, hub_from, hub_option, url_option
from hubbub.errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])

#: Events ``dlq show`` prints unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 50
#: Exit status of a replay or purge that found nothing to act on (not an error:
#: scripts tell it from success, 0, and from a failure, 1).
NOTHING_TO_DO = 3


def admin_from(file: Path | None, hub: str | None, url: str | None) -> Admin:
    """The :class:`Admin` for ``--file`` or ``--hub`` and ``--url``."""
    name, topology = hub_from(file, hub)
    return Admin(topology or name, url=url)


def broker_options(func: F) -> F:
    return file_option(hub_option(url_option(func)))


def limit_option(default: int) -> Callable[[F], F]:
    """``--limit N`` of a command that lists events (0: all)."""
    return click.option(
        "--limit",
        type=click.IntRange(min=0),
        default=default,
        show_default=True,
        help="Events to show (0: all).",
    )


def filter_options(func: F) -> F:
    func = click.option("--id", "ids", multiple=True, help="Event id (repeat for several).")(func)
    func = click.option("--exception", default=None, help="Exception type (short or full).")(func)
    func = click.option("--topic", default=None, help="Topic pattern, e.g. 'user.*'.")(func)
    func = click.option(
        "--since", default=None, help="Failed within (1h, 30m, 2d) or since an ISO date."
    )(func)
    return func


def selection_from(
    ids: tuple[str, ...], exception: str | None, topic: str | None, since: str | None
) -> Selection:
    return select(ids=ids, exception=exception, topic=topic, since=since)


def rate_from(rate: str | None) -> float | None:
    """Events per second in ``--rate`` (None: no limit); one line when it is no rate."""
    if rate is None:
        return None
    try:
        return parse_rate(rate)
    except ValueError as exc:
        raise ConfigurationError(f"--rate: {exc}") from exc


def chosen(selection: Selection, all_: bool) -> Selection:
    """A selection a destructive command may act on: explicit criteria, or ``--all``."""
    if all_ and not selection.everything:
        raise ConfigurationError("--all cannot be combined with --id or filters")
    if not all_ and selection.everything:
        raise ConfigurationError("say which events: --id ID, a filter, or --all")
    return selection


@click.group("dlq")
def group() -> None:
    """Inspect, replay and purge failed events (NAME: a subscriber, or 'unrouted')."""


@group.command("list")
@broker_options
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@friendly_errors
def list_(file: Path | None, hub: str | None, url: str | None, as_json: bool) -> None:
    """Each dead-letter queue: depth, oldest failure, most common exceptions."""
    summaries = admin_from(file, hub, url).summaries()
    if as_json:
        click.echo("\n".join(tables.json_array(s.to_json() for s in summaries)))
        return
    rows = [
        (
            s.name,
            s.queue,
            "missing" if s.depth < 0 else f"{s.depth}{'+' if s.truncated else ''}",
            tables.when(s.oldest),
            ", ".join(f"{label} ({count})" for label, count in s.top),
        )
        for s in summaries
    ]
    click.echo(tables.table(("NAME", "QUEUE", "DEPTH", "OLDEST", "MOST COMMON"), rows))


@group.command("show")
@click.argument("name")
@broker_options
@filter_options
@limit_option(DEFAULT_LIMIT)
@click.option("--json", "as_json", is_flag=True, help="JSON array, tracebacks included.")
@click.option("--details", is_flag=True, help="Every field, traceback and history.")
@friendly_errors
def show(
    name: str,
    file: Path | None,
    hub: str | None,
    url: str | None,
    ids: tuple[str, ...],
    exception: str | None,
    topic: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
    details: bool,
) -> None:
    """The failed events of NAME, oldest first; never removes or reorders one."""
    selection = selection_from(ids, exception, topic, since)
    admin = admin_from(file, hub, url)
    with admin.events(name, selection, limit=limit or None) as events:
        if as_json:
            for piece in tables.json_array(e.to_json() for e in events):
                click.echo(piece)
            return
        count = 0
        for count, event in enumerate(events, 1):
            if details:
                click.echo(_details(event))
            else:
                if count == 1:
                    click.echo(_HEADER)
                click.echo(_row(event))
    what = selection.describe()
    click.echo(f"{count} event(s) shown ({what}{', --limit reached' if count == limit else ''})")


@group.command("replay")
@click.argument("name")
@broker_options
@filter_options
@click.option("--all", "all_", is_flag=True, help="Every event of NAME.")
@click.option("--dry-run", is_flag=True, help="Only say what would be replayed.")
@click.option("--rate", default=None, help="At most this many per second: 10/s, 600/m.")
@click.option(
    "--edit", is_flag=True, help="Edit the data of the one --id event in $EDITOR, replay that."
)
@click.option(
    "--data",
    "new_data",
    default=None,
    metavar="JSON|@FILE|-",
    help="Replay the one --id event with this data instead (JSON, @file, - for stdin).",
)
@friendly_errors
def replay(
    name: str,
    file: Path | None,
    hub: str | None,
    url: str | None,
    ids: tuple[str, ...],
    exception: str | None,
    topic: str | None,
    since: str | None,
    all_: bool,
    dry_run: bool,
    rate: str | None,
    edit: bool,
    new_data: str | None,
) -> None:
    """Send events back to NAME's own queue (unrouted: to the hub), attempts reset.

    Each event leaves the dead-letter queue only after the broker confirmed
    its copy; an interrupted replay loses none. Exits 3 when there was
    nothing to replay.
    """
    selection = chosen(selection_from(ids, exception, topic, since), all_)
    if edit or new_data is not None:
        _replay_edited(admin_from(file, hub, url), name, selection, edit, new_data, (dry_run, rate))
        return
    per_second = rate_from(rate)
    verb = "would replay" if dry_run else "replayed"
    result = admin_from(file, hub, url).replay(
        name,
        selection,
        dry_run=dry_run,
        rate=per_second,
        on_event=lambda e: click.echo(f"{verb} {e.id} {e.topic}"),
    )
    done = result.matched if dry_run else result.moved
    click.echo(f"{done} event(s) {verb} to {result.target} ({selection.describe()})")
    for why, count in result.skipped.items():
        click.echo(f"left {count} event(s) in place: {why}")
    if result.truncated:
        click.echo("note: the queue is too long to scan in one go; run the command again")
    if not done:
        _nothing(f"nothing to replay: {_why_nothing(name, selection, result.skipped)}")


def _why_nothing(name: str, selection: Selection, skipped: Mapping[str, int]) -> str:
    if skipped:
        return "every matching event stays in place (see above)"
    return f"no event of {name} matches ({selection.describe()})"


def _nothing(line: str) -> NoReturn:
    """End a command that found nothing to act on: one line, exit :data:`NOTHING_TO_DO`."""
    click.echo(line)
    sys.exit(NOTHING_TO_DO)


def _replay_edited(
    admin: Admin,
    name: str,
    selection: Selection,
    edit: bool,
    new_data: str | None,
    others: tuple[bool, str | None],
) -> None:
    """``replay --id ID --edit`` / ``--data``: one event, replaced by an edited copy."""
    if edit and new_data is not None:
        raise ConfigurationError("--edit and --data exclude each other: give one")
    filtered = selection.exception or selection.topic or selection.since
    if len(selection.ids) != 1 or filtered or any(others):
        raise ConfigurationError(
            "--edit and --data replay one event: give exactly one --id "
            "(and no filter, --all, --dry-run or --rate)"
        )
    [event_id] = selection.ids
    data = _from_editor(admin, name, event_id) if edit else _from_option(new_data or "")
    result = admin.replay_edited(name, event_id, data)
    click.echo(f"replayed an edited copy of {event_id} to {result.target}")


def _from_option(value: str) -> Any:
    """The data of ``--data``: inline JSON, ``@file``, or ``-`` (standard input)."""
    if value == "-":
        return parse_data(sys.stdin.read(), source="standard input")
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"--data: cannot read {path}: {exc}") from exc
        return parse_data(text, source=str(path))
    return parse_data(value, source="--data")


def _from_editor(admin: Admin, name: str, event_id: str) -> Any:
    """Open the event's data in $EDITOR; the edited JSON, or an error if left unchanged."""
    found = admin.show(name, select(ids=[event_id]), limit=1)
    if not found:
        raise ConfigurationError(f"no event {event_id} in {name}: nothing replayed")
    original = _editable(found[0])
    text = click.edit(original, extension=".json", require_save=True)
    if text is None or text.strip() == original.strip():
        raise ConfigurationError(
            "the data was not changed: nothing replayed (to replay it as it is, drop --edit)"
        )
    return parse_data(text, source="the editor")


def _editable(event: FailedEvent) -> str:
    """What the editor starts from: pretty JSON, or a malformed event's body as text."""
    if event.data_problem is not None:
        return event.body_text()
    return json.dumps(event.data, indent=2, ensure_ascii=False) + "\n"


@group.command("purge")
@click.argument("name")
@broker_options
@filter_options
@click.option("--all", "all_", is_flag=True, help="Every event of NAME.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@friendly_errors
def purge(
    name: str,
    file: Path | None,
    hub: str | None,
    url: str | None,
    ids: tuple[str, ...],
    exception: str | None,
    topic: str | None,
    since: str | None,
    all_: bool,
    yes: bool,
) -> None:
    """Delete events of NAME for good.

    Asks first (unless --yes) when --all or a filter chose them, since how
    many match is only known now; --id alone names exactly what goes and
    does not ask. Exits 3 when nothing matched.
    """
    selection = chosen(selection_from(ids, exception, topic, since), all_)
    admin = admin_from(file, hub, url)
    if not yes and _open_ended(selection):
        count = admin.count(name, selection)
        if count == 0:
            _nothing(f"nothing to delete: no event of {name} matches ({selection.describe()})")
        if not click.confirm(
            f"Delete {count} event(s) of {name} ({selection.describe()}) for good?"
        ):
            click.echo("nothing deleted")
            return
    result = admin.purge(
        name, selection, on_event=lambda e: click.echo(f"deleted {e.id} {e.topic}")
    )
    click.echo(f"{result.purged} event(s) deleted from {name} ({selection.describe()})")
    if not result.purged:
        _nothing(f"nothing to delete: no event of {name} matches ({selection.describe()})")


def _open_ended(selection: Selection) -> bool:
    """True when a selection may match any number of events (--all or a filter)."""
    return selection.everything or bool(selection.exception or selection.topic or selection.since)


#: FAILED holds ``2024-05-01 09:00:03 (9999d ago)`` whole: 19 + 2 + 9 + 1 characters.
_FAILED_WIDTH = 31
_COLUMNS = (
    ("ID", 32),
    ("TOPIC", 28),
    ("TRIES", 5),
    ("FAILED", _FAILED_WIDTH),
    ("WHY", 24),
    ("MESSAGE", 40),
    ("DATA", 40),
)
_HEADER = tables.fixed(_COLUMNS)


def _row(event: FailedEvent) -> str:
    why = event.exception or f"[{event.reason}]"
    values = (
        event.id,
        ",".join(event.topics),
        str(event.attempts),
        tables.when(event.when),
        why,
        event.message,
        _preview(event, _COLUMNS[-1][1]),
    )
    return tables.fixed([(v, w) for v, (_, w) in zip(values, _COLUMNS, strict=True)])


def _preview(event: FailedEvent, width: int) -> str:
    """The start of the body as one line: cheap (no parsing), enough to recognise an event."""
    return event.body[: 4 * width].decode("utf-8", "replace")


def _details(event: FailedEvent) -> str:
    lines = [
        f"event {event.id}",
        f"  topic:      {event.topic}",
        *([f"  topics:     {', '.join(event.topics)}"] if len(event.topics) > 1 else []),
        f"  subscriber: {event.subscriber or '-'}",
        f"  reason:     {event.reason} (dead-lettered by {event.dead_lettered_by})",
        f"  exception:  {event.exception or '-'}",
        f"  message:    {event.message or '-'}",
        f"  attempts:   {event.attempts}",
        f"  first/last: {tables.when(event.first_failed)} / {tables.when(event.last_failed)}",
        f"  published:  {tables.when(event.published)}",
    ]
    for n, old in enumerate(event.history, 1):
        lines.append(
            f"  earlier #{n}: {old.get('exception') or old.get('reason')}: "
            f"{tables.clip(str(old.get('message') or ''), 80)}"
        )
    lines.extend(_data_lines(event))
    if event.traceback:
        lines.append("  traceback:")
        lines.extend("    " + line for line in event.traceback.rstrip().splitlines())
    return "\n".join(lines) + "\n"


def _data_lines(event: FailedEvent) -> list[str]:
    """The event's data, pretty-printed (or, for a malformed event, its body as text)."""
    problem = event.data_problem
    if problem is not None:
        return [f"  data:       not JSON ({problem}); the body as text:"] + [
            "    " + line for line in event.body_text().splitlines() or [""]
        ]
    pretty = json.dumps(event.data, indent=2, ensure_ascii=False, sort_keys=False)
    return ["  data:"] + ["    " + line for line in pretty.splitlines()]
