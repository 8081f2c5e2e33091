"""``hubbub consume``: run subscribers until SIGTERM or SIGINT.

Exit status: 0 after a clean stop; 1 on an error (one line on stderr);
:data:`EXIT_UNFINISHED` when the shutdown timeout expired with handlers
still running (each of their events is named in a WARNING and will be
delivered again). The process never waits for a handler thread past the
shutdown timeout.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from hubbub.cli.options import (
    app_on_path,
    file_option,
    friendly_errors,
    logging_options,
    topology_from,
    url_option,
)
from hubbub.codecs import Codecs
from hubbub.connection import mask
from hubbub.consumers.depth import DEFAULT_INTERVAL
from hubbub.consumers.handling import Handler
from hubbub.consumers.metrics import Metrics
from hubbub.consumers.monitoring import monitored
from hubbub.consumers.worker import DEFAULT_SHUTDOWN_TIMEOUT, ShutdownTimeoutError, Worker
from hubbub.errors import ConfigurationError, HubbubError, TopologyError
from hubbub.inbox import InboxStore
from hubbub.middleware import check
from hubbub.topology import loader
from hubbub.topology.model import Topology
from hubbub.topology.references import resolve, resolve_handlers

log = logging.getLogger("hubbub.cli")

#: Exit status when the shutdown timeout expired with events unfinished.
EXIT_UNFINISHED = 3


@click.command("consume")
@file_option
@url_option
@click.option(
    "--subscriber",
    "-s",
    "subscribers",
    multiple=True,
    envvar="HUBBUB_SUBSCRIBERS",
    show_envvar=True,
    help="Subscriber to run (repeat; default: all).",
)
@click.option(
    "--prefetch",
    type=click.IntRange(1, 65535),
    envvar="HUBBUB_PREFETCH",
    show_envvar=True,
    default=None,
    help="Unacked events per subscriber.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    envvar="HUBBUB_CONCURRENCY",
    show_envvar=True,
    default=None,
    help="Events each subscriber handles at once (threads; tasks for async def handlers).",
)
@click.option(
    "--shutdown-timeout",
    type=float,
    envvar="HUBBUB_SHUTDOWN_TIMEOUT",
    default=DEFAULT_SHUTDOWN_TIMEOUT,
    show_default=True,
    help="Seconds to let handlers finish after SIGTERM.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    envvar="HUBBUB_METRICS_PORT",
    show_envvar=True,
    default=None,
    help="Serve Prometheus /metrics and /healthz (for 'hubbub health') on this port.",
)
@click.option(
    "--metrics-host",
    envvar="HUBBUB_METRICS_HOST",
    show_envvar=True,
    default="",
    help="Address to serve metrics on (default: all interfaces).",
)
@click.option(
    "--depth-interval",
    type=click.FloatRange(1, 3600),
    envvar="HUBBUB_DEPTH_INTERVAL",
    show_envvar=True,
    default=DEFAULT_INTERVAL,
    show_default=True,
    help="Seconds between polls of queue and dead-letter queue depth (metrics).",
)
@click.option(
    "--middleware",
    "middleware_refs",
    multiple=True,
    envvar="HUBBUB_MIDDLEWARE",
    show_envvar=True,
    help="Middleware around every handler and every event handlers publish: "
    "package.module:name of an instance, or of a class taking no arguments "
    "(repeat, outermost first; the variable: space-separated). See docs/middleware.md.",
)
@click.option(
    "--inbox",
    "inbox_dsn",
    envvar="HUBBUB_INBOX",
    show_envvar=True,
    default=None,
    help="The PostgreSQL DSN of the inbox where the subscribers marked 'idempotent: true' "
    "record the events they handled, to skip one that comes again (needs hubbub[postgres]). "
    "See docs/inbox.md.",
)
@click.option(
    "--inbox-table",
    envvar="HUBBUB_INBOX_TABLE",
    show_envvar=True,
    default="hubbub_inbox",
    show_default=True,
    help="The inbox's table (table or schema.table; created when missing).",
)
@click.option(
    "--inbox-keep",
    envvar="HUBBUB_INBOX_KEEP",
    show_envvar=True,
    default=None,
    help="How long the inbox remembers a handled event (e.g. 30d; default: for ever).",
)
@click.option(
    "--codecs",
    "codecs_ref",
    envvar="HUBBUB_CODECS",
    show_envvar=True,
    default=None,
    help="The hub's codecs, package.module:name of a hubbub.Codecs (default: JSON).",
)
@logging_options
@friendly_errors
def command(
    file: Path | None,
    url: str | None,
    subscribers: tuple[str, ...],
    prefetch: int | None,
    concurrency: int | None,
    shutdown_timeout: float,
    metrics_port: int | None,
    metrics_host: str,
    depth_interval: float,
    middleware_refs: tuple[str, ...],
    inbox_dsn: str | None,
    inbox_table: str,
    inbox_keep: str | None,
    codecs_ref: str | None,
) -> None:
    """Consume events for the topology's subscribers, each on its own queue."""
    topology = topology_from(file)
    names = list(subscribers) or [s.name for s in topology.subscribers]
    unknown = [n for n in names if n not in {s.name for s in topology.subscribers}]
    if unknown:
        raise ConfigurationError(
            f"unknown subscriber(s) {', '.join(unknown)} in --subscriber; {file} defines "
            f"{', '.join(s.name for s in topology.subscribers) or 'none'}"
        )
    handlers = handlers_for(topology, names, source=str(file))
    middleware = [middleware_from(ref) for ref in middleware_refs]
    inbox = inbox_from(topology, names, concurrency, inbox_dsn, inbox_table, inbox_keep)
    codecs = codecs_from(codecs_ref) if codecs_ref else None
    metrics = Metrics() if metrics_port is not None else None
    worker = Worker(
        topology,
        handlers,
        url=url,
        subscribers=names,
        prefetch=prefetch,
        concurrency=concurrency,
        shutdown_timeout=shutdown_timeout,
        observer=metrics,
        name=f"hubbub consume {','.join(names)}",
        middleware=middleware,
        codecs=codecs,
        inbox=inbox,
    )
    try:
        if metrics is None or metrics_port is None:
            run_until_signalled(worker)
        else:
            with monitored(
                worker, metrics, port=metrics_port, host=metrics_host, depth_interval=depth_interval
            ):
                run_until_signalled(worker)
    except ShutdownTimeoutError as exc:
        click.echo(f"error: {mask(str(exc))}", err=True)
        _exit_now(EXIT_UNFINISHED)
    if worker.left_behind:
        _exit_now(0)


def _exit_now(status: int) -> None:
    """Exit without waiting for threads left inside a handler (or anything they started)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def middleware_from(ref: str) -> Any:
    """The middleware ``ref`` names: an instance, or a class built with no arguments."""
    target = resolve(ref, "middleware")
    if isinstance(target, type):
        try:
            target = target()
        except TypeError as exc:
            raise ConfigurationError(
                f"middleware {ref!r} is a class that needs arguments ({exc}): name an "
                "instance of it instead (timing = Timing(...) in your module)"
            ) from exc
    try:
        return check([target])[0]
    except TypeError as exc:
        raise ConfigurationError(f"middleware {ref!r}: {exc}") from exc


def inbox_from(
    topology: Topology,
    names: list[str],
    concurrency: int | None,
    dsn: str | None,
    table: str,
    keep: str | None,
) -> InboxStore | None:
    """The inbox store ``--inbox`` names (None without it), its table checked before consuming.

    Its pool holds a connection for each handler of an idempotent subscriber that
    can run at once (``concurrency`` overrides the file's), at least the store's default.
    """
    if not dsn:
        if keep:
            raise ConfigurationError("--inbox-keep needs --inbox (the inbox's PostgreSQL DSN)")
        return None
    idempotent = [topology.subscriber(n) for n in names if topology.subscriber(n).idempotent]
    if not idempotent:
        log.warning(
            "--inbox is given but no subscriber run here is idempotent "
            "(idempotent: true in the topology file): the inbox records nothing"
        )
    try:
        from hubbub.inbox.postgres import DEFAULT_CONNECTIONS, PostgresStore
    except ImportError as exc:
        raise ConfigurationError(f"--inbox: {exc}") from None
    try:
        at_once = sum(concurrency or s.concurrency for s in idempotent)
        store = PostgresStore(
            dsn, table=table, keep=keep, max_connections=max(DEFAULT_CONNECTIONS, at_once)
        )
    except ValueError as exc:
        raise ConfigurationError(f"--inbox-keep: {exc}") from None
    store.check()
    return store


def codecs_from(ref: str) -> Codecs:
    """The :class:`~hubbub.codecs.Codecs` ``ref`` names."""
    target = resolve(ref, "codecs")
    if not isinstance(target, Codecs):
        raise ConfigurationError(
            f"codecs {ref!r} is a {type(target).__name__}, not a hubbub.Codecs: "
            "name one, e.g. codecs = Codecs(MsgpackCodec()) in your module"
        )
    return target


def handlers_for(topology: Topology, names: list[str], *, source: str) -> dict[str, Handler]:
    """Import and check the handlers of ``names`` alone, every problem at once.

    A process needs only the dependencies of the subscribers it runs, and
    another subscriber's broken import does not stop it ('hubbub topology
    validate' still imports them all).
    """
    app_on_path()
    handlers, problems = resolve_handlers([topology.subscriber(n) for n in names])
    if problems:
        raise _with_lines(TopologyError(problems, source=source))
    return handlers


def _with_lines(error: TopologyError) -> TopologyError:
    """``error`` with the line of each problem, when its source is a file that reads."""
    try:
        text = Path(error.source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return error
    return loader.with_lines(error, text)


def run_until_signalled(worker: Worker) -> None:
    """Run ``worker`` in a thread; the first SIGTERM/SIGINT stops it gracefully."""
    failure: list[HubbubError] = []

    def run() -> None:
        try:
            worker.run()
        except HubbubError as exc:
            failure.append(exc)

    requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if requested.is_set():
            return
        log.info("received %s", signal.Signals(signum).name)
        requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=run, name="hubbub-io")
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        if requested.is_set():
            worker.stop()
    if failure:
        raise failure[0]
