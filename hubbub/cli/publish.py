"""``hubbub publish TOPIC DATA``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hubbub.cli.options import file_option, friendly_errors, hub_from, hub_option, url_option
from hubbub.producers.publisher import Publisher
from hubbub.topology.delay import whole_seconds
from hubbub.topology.durations import parse_duration


@click.command("publish")
@click.argument("topic")
@click.argument("data", default="null")
@file_option
@hub_option
@url_option
@click.option(
    "--delay",
    default=None,
    help="Deliver later: 90s, 10m, 2h, 3d (rounded up to whole seconds; at most 2^28-1 s).",
)
@click.option("--id", "message_id", default=None, help="Event id (default: a new UUID).")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE", help="Extra header.")
@friendly_errors
def command(
    topic: str,
    data: str,
    file: Path | None,
    hub: str | None,
    url: str | None,
    delay: str | None,
    message_id: str | None,
    headers: tuple[str, ...],
) -> None:
    """Publish one event (DATA is JSON) and wait for the broker's confirm."""
    hub_name, topology = hub_from(file, hub)
    try:
        payload: Any = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="DATA") from exc
    seconds = None
    if delay is not None:
        try:
            seconds = whole_seconds(parse_duration(delay))  # too long: one line, no connection
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--delay") from exc
    extra = dict(_header(h) for h in headers)
    with Publisher(hub_name, url=url, name="hubbub cli") as publisher:
        event_id = publisher.publish(
            topic, payload, headers=extra or None, message_id=message_id, delay=seconds
        )
    when = f" (delivered in {seconds} s)" if seconds is not None else ""
    click.echo(f"published {topic} {event_id} to {hub_name}{when}")
    if topology is not None and not any(True for _ in topology.matching(topic)):
        click.echo(f"note: no subscriber matches {topic!r}; parked in {topology.names.unrouted}")


def _header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--header")
    return key, value
