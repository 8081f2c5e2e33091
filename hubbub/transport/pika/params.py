"""pika's side of connecting: connection parameters from URLs, and why a connect failed.

The URLs, their order and their masking are hubbub's (:mod:`hubbub.connection`);
this module turns them into ``pika.URLParameters`` with hubbub's defaults,
opens short blocking connections, and translates pika's connect errors into
:class:`~hubbub.errors.BrokerConnectionError` (:func:`hubbub.connection.connect_failure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions as pe

from hubbub.connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEARTBEAT,
    FailureKind,
    connect_failure,
    mask,
)
from hubbub.errors import BrokerConnectionError, ConfigurationError
from hubbub.transport.pika import tls


def parameters(
    urls: Sequence[str], *, name: str, heartbeat: int | None = None
) -> list[pika.URLParameters]:
    """pika parameters for each URL, labelled ``name`` in the broker's UI.

    Settings in a URL's query string (``?heartbeat=5``, ``?ssl_options=...``)
    win over hubbub's defaults; ``amqps://`` URLs verify the broker with the
    CA and client certificate that :mod:`hubbub.transport.pika.tls` finds.
    """
    result = []
    for url in urls:
        try:
            params = pika.URLParameters(url)
        except ValueError as exc:
            raise ConfigurationError(f"invalid broker URL {mask(url)}: {mask(str(exc))}") from exc
        given = set(parse_qs(urlsplit(url).query))
        params.client_properties = {"connection_name": name, "product": "hubbub"}
        if heartbeat is not None or "heartbeat" not in given:
            params.heartbeat = DEFAULT_HEARTBEAT if heartbeat is None else heartbeat
        if "socket_timeout" not in given:
            params.socket_timeout = DEFAULT_CONNECT_TIMEOUT
        if "stack_timeout" not in given:  # TCP, TLS and AMQP handshake together (pika: 15 s)
            params.stack_timeout = DEFAULT_CONNECT_TIMEOUT
        if "blocked_connection_timeout" not in given:
            params.blocked_connection_timeout = 60
        params.connection_attempts = 1  # callers run their own reconnect loops
        tls.configure(params, url_has_ssl_options="ssl_options" in given)
        result.append(params)
    return result


def connect(urls: Sequence[str], *, name: str) -> pika.BlockingConnection:
    """A blocking connection to the first URL that answers (for short admin work)."""
    try:
        return pika.BlockingConnection(parameters(urls, name=name))
    except (pe.AMQPError, OSError) as exc:
        raise connect_error(exc, urls) from exc


def connect_error(
    exc: BaseException, urls: Sequence[str], *, timeout: float | None = None
) -> BrokerConnectionError:
    """Translate why pika could not connect into one actionable sentence.

    ``timeout``: the connect timeout in force (default :data:`DEFAULT_CONNECT_TIMEOUT`).
    """
    root = root_cause(exc)
    return connect_failure(exc, urls, cause=root, kind=_kind(exc, root), timeout=timeout)


def _kind(exc: BaseException, root: BaseException) -> FailureKind | None:
    """What pika's exception types say about a failed connect."""
    if isinstance(exc, pe.ProbableAuthenticationError):
        return "credentials"
    if isinstance(exc, pe.ProbableAccessDeniedError):
        return "vhost"
    if "Timeout while setting up AMQP" in str(root):  # pika's stack timeout, in the handshake
        return "handshake"
    if isinstance(root, pe.ConnectionOpenAborted):
        return "aborted"
    return None


def root_cause(exc: BaseException) -> BaseException:
    """The innermost error pika wrapped (a refused socket, a failed DNS lookup, ...).

    pika nests it in ``exception`` (connector phases), ``exceptions`` (the
    connection workflow) or ``args[0]`` (AMQPConnectionError), and the outer
    errors print as empty strings.
    """
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "exception", None)
        nested = getattr(exc, "exceptions", None)
        if inner is None and nested:
            inner = nested[-1]
        if inner is None and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc
