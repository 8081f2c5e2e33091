"""Broker URLs: where they come from, in which order they are tried, how they print.

Precedence, lowest first: the built-in default, ``HUBBUB_URL``, an explicit
``url=`` argument (the CLI's ``--url``). ``HUBBUB_URL`` may list several
comma-separated URLs (cluster nodes); connections try them in turn, each
publisher and consumer in its own random order (:func:`node_order`) so the
clients of a cluster spread over its nodes.
Passwords never leave this module unmasked: print :func:`mask` instead.
Pure: a transport turns URLs into its client's connection settings (the
RabbitMQ one in ``hubbub.transport``) and its client's errors into
:func:`connect_failure`.
"""

from __future__ import annotations

import os
import random
import re
import socket
from collections.abc import Sequence
from typing import Literal
from urllib.parse import unquote, urlsplit

from hubbub.errors import BrokerConnectionError, ConfigurationError

#: What a transport found a failed connection to be: bad credentials, a refused
#: virtual host, no AMQP handshake in time, or aborted while opening.
FailureKind = Literal["credentials", "vhost", "handshake", "aborted"]

#: Used when neither ``url=`` nor ``HUBBUB_URL`` says otherwise.
DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
#: ``random`` (the default): each client tries the nodes in an order of its
#: own; ``given``: in the order ``HUBBUB_URL`` lists them (a preferred node first).
ORDER_ENV = "HUBBUB_URL_ORDER"
#: Seconds between heartbeats; the broker drops a peer silent for two of them,
#: and the client checks every heartbeat + 5 s that something arrived, so a frozen
#: link (no FIN, no data) is noticed within 10-20 s. RabbitMQ advises 5-20 s;
#: 30 s took about a minute to notice (docs/operations.md).
DEFAULT_HEARTBEAT = 5
#: Seconds to wait for the TCP connection and the whole AMQP handshake.
DEFAULT_CONNECT_TIMEOUT = 10.0

#: ``scheme://user:`` then the password: everything up to the *last* ``@`` of
#: the URL (a password may hold an unescaped ``/``, ``#`` or ``@``); a URL
#: ends at white space or at the comma between the URLs of a cluster.
#: A scheme starts only where no scheme character precedes it (the lookbehind):
#: without it a long run of letters is tried from every position, in quadratic
#: time, and every log line goes through :func:`mask`.
_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])(?P<head>[a-z][a-z0-9+.-]*://[^:/@,\s]*:)(?P<pw>[^\s,]*)@", re.I
)


def resolve_urls(url: str | None = None) -> list[str]:
    """The broker URLs to use, following the documented precedence."""
    raw = url or os.environ.get("HUBBUB_URL") or DEFAULT_URL
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    problems = [f"{mask(u)}: {p}" for u in urls for p in _url_problems(u)]
    if not urls:
        problems.append("no broker URL given")
    if problems:
        raise ConfigurationError("invalid broker URL: " + "; ".join(problems))
    return urls


def node_order(urls: Sequence[str], rng: random.Random | None = None) -> list[str]:
    """The order in which one client tries the nodes of a cluster.

    Shuffled (by ``rng``, else the process's generator) unless
    ``HUBBUB_URL_ORDER=given``: with every client starting on a random node,
    a cluster's connections, and after a node loss its reconnections, spread
    over the nodes instead of all landing on the first one listed.
    """
    order = list(urls)
    mode = os.environ.get(ORDER_ENV, "random").strip().lower() or "random"
    if mode not in ("random", "given"):
        raise ConfigurationError(f"{ORDER_ENV}={mode!r}: use 'random' or 'given'")
    if mode == "random":
        shuffle = rng.shuffle if rng is not None else random.shuffle
        shuffle(order)
    return order


def mask(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***@", text)


def describe(urls: Sequence[str]) -> str:
    """A printable, password-free name for a list of broker URLs."""
    return ", ".join(mask(u) for u in urls)


def vhost_of(url: str) -> str:
    """The virtual host a URL names (``/`` when it names none)."""
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def user_of(url: str) -> str:
    """The user a URL names (``guest``, the AMQP clients' default, when it names none)."""
    user = urlsplit(url).username
    return unquote(user) if user else "guest"


def connect_failure(
    exc: BaseException,
    urls: Sequence[str],
    *,
    cause: BaseException | None = None,
    kind: FailureKind | None = None,
    timeout: float | None = None,
) -> BrokerConnectionError:
    """Why a client could not connect to ``urls``, as one actionable sentence.

    ``exc`` is what the client raised, ``cause`` the innermost error it
    wrapped (a refused socket, a failed DNS lookup; default ``exc``), and
    ``kind`` what the client's own exception types say (each transport
    classifies its client's errors). ``timeout``: the connect timeout in
    force (default :data:`DEFAULT_CONNECT_TIMEOUT`).
    """
    where = describe(urls)
    text = f"{type(exc).__name__}: {exc!r}"
    root = exc if cause is None else cause
    if kind == "credentials" or "ACCESS_REFUSED" in text:
        return BrokerConnectionError(
            f"broker at {where} refused the credentials: check the user and password in the URL"
        )
    if kind == "vhost" or "NOT_ALLOWED" in text:
        return BrokerConnectionError(
            f"broker at {where} refused the virtual host: it does not exist "
            "or the user has no access to it (rabbitmqctl add_vhost / set_permissions)"
        )
    if isinstance(root, socket.gaierror):
        return BrokerConnectionError(f"cannot resolve the broker host in {where}: check the URL")
    if kind == "handshake":
        return BrokerConnectionError(
            f"cannot connect to the broker at {where}: no AMQP handshake within "
            f"{timeout or DEFAULT_CONNECT_TIMEOUT:g} s (the port accepted the connection "
            "but did not answer as RabbitMQ): "
            "check the host and port, and whether the broker is overloaded"
        )
    if isinstance(root, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(root, TimeoutError) or "Timeout" in f"{type(root).__name__} {root}":
        why = "timed out"
    elif kind == "aborted":
        why = "the connection was aborted while opening"
    else:
        why = f"{type(root).__name__}: {root}".rstrip(": ")
    return BrokerConnectionError(
        f"cannot connect to the broker at {where} ({why}): is RabbitMQ running and reachable?"
    )


def _url_problems(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if parts.scheme not in ("amqp", "amqps"):
        problems.append("the scheme must be amqp:// or amqps://")
    if not parts.hostname:
        problems.append("no host")
    return problems
