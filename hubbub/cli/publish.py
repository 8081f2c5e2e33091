"""``hubbub publish TOPIC DATA``: DATA inline, from a file (``@path``) or stdin (``-``);
``--also TOPIC`` (repeatable) publishes the same event under more topics."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hubbub.cli.options import file_option, friendly_errors, hub_from, hub_option, url_option
from hubbub.producers.publisher import DEFAULT_CONFIRM_TIMEOUT, Publisher
from hubbub.topology.delay import whole_seconds
from hubbub.topology.durations import parse_duration


@click.command("publish")
@click.argument("topic")
@click.argument("data", default="null", metavar="[DATA|@FILE|-]")
@file_option
@hub_option
@url_option
@click.option(
    "--delay",
    default=None,
    help="Deliver later: 90s, 10m, 2h, 3d (rounded up to whole seconds; at most 2^28-1 s).",
)
@click.option(
    "--also",
    "also",
    multiple=True,
    metavar="TOPIC",
    help="Another topic of the same event (repeatable): one event, each subscriber one copy.",
)
@click.option("--id", "message_id", default=None, help="Event id (default: a new UUID).")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE", help="Extra header.")
@click.option(
    "--timeout",
    default=DEFAULT_CONFIRM_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for the broker's confirm before failing "
    "(connecting has its own 10 s timeout).",
)
@friendly_errors
def command(
    topic: str,
    data: str,
    file: Path | None,
    hub: str | None,
    url: str | None,
    delay: str | None,
    also: tuple[str, ...],
    message_id: str | None,
    headers: tuple[str, ...],
    timeout: float,
) -> None:
    """Publish one event and wait for the broker's confirm.

    DATA is JSON: inline, @FILE to read it from a file, or - to read it
    from stdin (for data too big for a command line). Fails within
    --timeout seconds once connected.
    """
    hub_name, topology = hub_from(file, hub)
    payload = _payload(data)
    seconds = None
    if delay is not None:
        try:
            seconds = whole_seconds(parse_duration(delay))  # too long: one line, no connection
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--delay") from exc
    extra = dict(_header(h) for h in headers)
    topics = list(dict.fromkeys([topic, *also]))  # repeated ones count once
    publisher = Publisher(hub_name, url=url, name="hubbub cli", confirm_timeout=timeout)
    try:
        event_id = publisher.publish(
            topics, payload, headers=extra or None, message_id=message_id, delay=seconds
        )
    except BaseException:
        publisher.abort()  # the event failed: waiting for other confirms is pointless
        raise
    publisher.close()
    when = f" (delivered in {seconds} s)" if seconds is not None else ""
    click.echo(f"published {', '.join(topics)} {event_id} to {hub_name}{when}")
    if topology is not None and not any(True for t in topics for _ in topology.matching(t)):
        quoted = ", ".join(repr(t) for t in topics)
        click.echo(f"note: no subscriber matches {quoted}; parked in {topology.names.unrouted}")


def _header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--header")
    return key, value


def _payload(data: str) -> Any:
    """The JSON value of DATA, read from stdin (``-``) or a file (``@path``) when it says so."""
    if data == "-":
        raw, where = sys.stdin.buffer.read(), "stdin"
    elif data.startswith("@"):
        try:
            raw, where = Path(data[1:]).read_bytes(), data[1:]
        except OSError as exc:
            problem = f"cannot read {data[1:]}: {exc.strerror}"
            raise click.BadParameter(problem, param_hint="DATA") from None
    else:
        raw, where = data.encode("utf-8", "surrogateescape"), "DATA"
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{where} is not valid JSON: {exc}", param_hint="DATA") from None
