"""``hubbub health``: is the consumer process on this host connected and consuming?

Made for container health checks (``HEALTHCHECK CMD hubbub health``). It asks
the consumer's own ``/healthz`` endpoint (served on ``--metrics-port``, see
:mod:`hubbub.consumers.endpoint`) rather than the broker, because a broker
that answers says nothing about whether this consumer consumes. Exit 0 when
healthy, 1 otherwise (an unreachable endpoint, or no port to ask, included: a
check that cannot run is a failed check), with one line saying why.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import click


@click.command("health")
@click.option(
    "--port",
    envvar="HUBBUB_METRICS_PORT",
    show_envvar=True,
    type=click.IntRange(1, 65535),
    default=None,
    help="The consumer's --metrics-port.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the consumer runs.")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait.")
def command(port: int | None, host: str, timeout: float) -> None:
    """Exit 0 if the consumer is connected and consuming every subscriber, else 1."""
    if port is None:
        click.echo(
            "unhealthy: no port to ask: give --port or HUBBUB_METRICS_PORT "
            "(the consumer's --metrics-port)",
            err=True,
        )
        sys.exit(1)
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        click.echo(f"unhealthy: no consumer answers on {url} ({_reason(exc)})", err=True)
        sys.exit(1)
    try:
        details = json.loads(body)
    except ValueError:
        details = {}
    if status == 200 and details.get("healthy"):
        subscribers = ", ".join(details.get("subscribers", []))
        click.echo(f"healthy: consuming {subscribers}")
        return
    click.echo(f"unhealthy: {_explain(details) or f'HTTP {status}'}", err=True)
    sys.exit(1)


def _explain(details: dict[str, object]) -> str:
    if details.get("stopping"):
        return "the consumer is stopping"
    if not details.get("consuming"):
        return "not consuming (connecting, reconnecting to the broker, or a queue is missing)"
    if not details.get("responsive"):
        return "the consumer's I/O thread does not answer"
    stuck = details.get("stuck")
    if isinstance(stuck, dict) and stuck:
        counts = ", ".join(f"{n} in {name}" for name, n in stuck.items())
        return f"handler threads stuck past their time limit ({counts}): restart the consumer"
    return ""


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    return str(reason) or type(reason).__name__
