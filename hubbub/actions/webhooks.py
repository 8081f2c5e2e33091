"""``handler: webhook``: POST each event as JSON to a URL, signed, retried on failure.

The body is one JSON object: ``id``, ``topic`` (``topics`` too when the
event has several), ``data``, ``timestamp`` (ISO 8601), ``attempt``,
``correlation_id``, ``causation_id`` and ``subscriber``. With ``secret_env``
the request carries :data:`~hubbub.actions.signing.HEADER` (see
:mod:`hubbub.actions.signing` for its format and how to verify it).

What an answer means for the event (the subscriber's ``retry:`` policy):
2xx delivered; a connection error, a timeout, 408 or 5xx is retried with
the policy's backoff (429 and 503 after their ``Retry-After`` when they send
one, at most :data:`MAX_RETRY_AFTER`); any other 4xx, a redirect, and a TLS
error (an untrusted certificate, https to a plain http port) is dead-lettered
at once, since sending the same request again would get the same answer. Delivery is at least
once: a receiver deduplicates by ``Hubbub-Event-Id``.

Only the standard library: ``http.client`` with one kept-alive connection
per host and handler thread, so a busy subscriber does not open a TCP (and
TLS) connection per event. ``timeout`` bounds the whole POST (connect, send,
read the whole answer), so a slow server cannot hold a handler thread
longer. Messages show the URL masked (:func:`hubbub.actions.urls.shown`).
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import os
import re
import socket
import ssl
import threading
import time
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hubbub import __version__, envelope
from hubbub.actions import signing
from hubbub.actions.urls import header_value_problem, shown, url_problem
from hubbub.errors import DontRetry, HubbubError, Retry
from hubbub.topology import settings as settings_check
from hubbub.topology.model import Seconds

#: Seconds a POST may take by default: to connect, send and read the whole answer.
DEFAULT_TIMEOUT = 10.0
#: The longest wait a ``Retry-After`` gets (seconds): a longer one (a year, say) would
#: park the event in the delay ladder out of sight of ``hubbub dlq show``.
MAX_RETRY_AFTER = 3600.0
#: Bytes of an error answer's body quoted in the failure record.
QUOTED = 200
#: Bytes of an answer read (a longer one closes the connection).
MAX_ANSWER = 65536
#: Headers hubbub sets itself; ``headers:`` may not replace them.
OWN_HEADERS = frozenset(
    h.lower() for h in (signing.HEADER, "Content-Type", "Content-Length", "Host", "Hubbub-Event-Id")
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class WebhookError(HubbubError):
    """A webhook POST failed in a way worth retrying (connection, timeout, 5xx)."""


class WebhookSettings(BaseModel):
    """``settings:`` of a ``webhook`` subscriber."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Where to POST (http or https).
    url: str
    #: Seconds the whole POST may take ("10s"): connect, send, and read the answer.
    timeout: Annotated[Seconds, Field(gt=0)] = DEFAULT_TIMEOUT
    #: Extra request headers (an API key header, say).
    headers: dict[str, str] = {}
    #: The environment variable holding the signing secret; None: unsigned.
    secret_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in OWN_HEADERS:
                raise ValueError(f"{name!r} is set by hubbub: remove it")
            problem = header_value_problem(text)
            if problem:  # the value itself is not quoted: it may be a key
                raise ValueError(f"the value of {name!r} {problem}")
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and not os.environ.get(value):  # where it runs: see settings
            raise settings_check.environment_problem(
                f"environment variable {value} is not set (or empty): set it to the "
                "webhook's signing secret where hubbub runs, or remove secret_env"
            )
        return value


def webhook(event: envelope.Event, *, settings: WebhookSettings) -> None:
    """POST ``event`` to ``settings.url``; raise to have it retried or dead-lettered."""
    body = payload(event)
    defaults = {
        "User-Agent": f"hubbub/{__version__}",
        "Hubbub-Topic": event.topic,
        "Hubbub-Attempt": str(event.attempt),
    }
    if len(event.topics) > 1:
        defaults["Hubbub-Topics"] = ", ".join(event.topics)
    given = {name.lower() for name in settings.headers}
    headers = {name: v for name, v in defaults.items() if name.lower() not in given}
    headers.update(settings.headers)  # they may replace the defaults, never what follows
    headers["Content-Type"] = "application/json"
    headers["Hubbub-Event-Id"] = event.id
    if settings.secret_env:
        headers[signing.HEADER] = signing.sign(_secret(settings.secret_env), body)
    status, reason, retry_after, quoted = _post(settings.url, body, headers, settings.timeout)
    judge(shown(settings.url), status, reason, retry_after, quoted)


def payload(event: envelope.Event) -> bytes:
    """The JSON body sent for ``event`` (DontRetry when its data is no JSON)."""
    document: dict[str, Any] = {"id": event.id, "topic": event.topic}
    if len(event.topics) > 1:
        document["topics"] = list(event.topics)
    document.update(
        data=event.data,
        timestamp=event.timestamp.isoformat() if event.timestamp else None,
        attempt=event.attempt,
        correlation_id=event.correlation_id,
        causation_id=event.causation_id,
        subscriber=event.subscriber,
    )
    try:
        return envelope.dumps(document)
    except TypeError as exc:
        raise DontRetry(f"the event's data cannot be sent as JSON: {exc}") from exc


def judge(
    where: str, status: int, reason: str, retry_after: float | None, quoted: str = ""
) -> None:
    """Return on 2xx; else raise what makes the subscriber retry or dead-letter."""
    if 200 <= status < 300:
        return
    said = f"POST {where} answered {status} {reason}".rstrip() + (f": {quoted}" if quoted else "")
    if status in (429, 503) and retry_after is not None:
        wait = min(retry_after, MAX_RETRY_AFTER)
        asked = f"Retry-After {retry_after:g}s" + (
            f", waiting {wait:g}s" if wait < retry_after else ""
        )
        raise Retry(f"{said} ({asked})", after=wait)
    if status == 408 or status == 429 or status >= 500:
        raise WebhookError(said)
    cause = WebhookError(said)
    if 300 <= status < 400:
        raise DontRetry(f"{said}: hubbub does not follow redirects, set url to the target") from (
            cause
        )
    raise DontRetry(said) from cause


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:  # checked at start; gone since: nothing a retry would change
        raise DontRetry(f"environment variable {name} (the webhook's secret) is not set")
    return value


# -- HTTP ----------------------------------------------------------------------

_Reply = tuple[int, str, float | None, str]
_local = threading.local()
_TLS = ssl.create_default_context()
#: What a kept-alive connection the server has meanwhile closed raises on reuse.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> _Reply:
    """POST once within ``timeout`` (connect, send and the whole answer); a kept-alive
    connection found closed is replaced and the POST sent again, in what time is left."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    deadline = time.monotonic() + timeout
    for fresh in (False, True):
        left = deadline - time.monotonic()
        connection, reused = _connection(parts.scheme, parts.netloc, max(left, 0.001), fresh=fresh)
        watchdog = _Watchdog(connection, left)
        try:
            with watchdog:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                quoted = _quote(response.read(MAX_ANSWER))
            if watchdog.fired:
                raise TimeoutError  # the answer was cut short at the deadline
            if not response.isclosed():  # a longer answer than we read: cannot be reused
                response.close()
                _drop(parts.scheme, parts.netloc)
        except _STALE as exc:
            _drop(parts.scheme, parts.netloc)
            if reused and not fresh and not watchdog.fired:
                continue  # closed by the server while idle, most likely: send it again
            raise _failed(url, exc, timeout, watchdog) from exc
        except (OSError, http.client.HTTPException) as exc:
            _drop(parts.scheme, parts.netloc)
            if _misconfigured(exc) and not watchdog.fired:
                said = f"{_failed(url, exc, timeout, watchdog)}: {_TLS_ADVICE}"
                failure = WebhookError(said)
                failure.__cause__ = exc
                raise DontRetry(said) from failure
            raise _failed(url, exc, timeout, watchdog) from exc
        except BaseException:
            _drop(parts.scheme, parts.netloc)  # never leave a half-sent request in the pool
            raise
        if response.will_close:
            _drop(parts.scheme, parts.netloc)
        retry_after = retry_after_seconds(response.getheader("Retry-After"))
        return response.status, response.reason, retry_after, quoted
    raise AssertionError("unreachable")  # pragma: no cover


class _Watchdog:
    """Shuts the connection's socket down when ``seconds`` pass before the block ends.

    A socket timeout bounds each read, not the request: a server sending a
    byte at a time would hold the handler thread for as long as it likes.
    Shutting the socket down from a timer thread makes the blocked read
    return at once, whatever the handler thread was waiting for.
    """

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._done = False
        self.fired = seconds <= 0
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        if self.fired:
            raise TimeoutError  # no time left for a second try
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            sock = self._connection.sock
        if sock is not None:  # still connecting otherwise: its own timeout bounds that
            with contextlib.suppress(OSError):  # the raw socket's, TLS or not
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _connection(
    scheme: str, netloc: str, timeout: float, *, fresh: bool
) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's connection to ``netloc`` (new when ``fresh``), and whether it was used."""
    pool: dict[tuple[str, str], http.client.HTTPConnection] = _local.__dict__.setdefault("pool", {})
    key = (scheme, netloc)
    connection = None if fresh else pool.get(key)
    reused = connection is not None
    if connection is None:
        connection = (
            http.client.HTTPSConnection(netloc, timeout=timeout, context=_TLS)
            if scheme == "https"
            else http.client.HTTPConnection(netloc, timeout=timeout)
        )
        pool[key] = connection
    connection.timeout = timeout
    if connection.sock is not None:
        connection.sock.settimeout(timeout)
    return connection, reused


def _drop(scheme: str, netloc: str) -> None:
    connection = _local.__dict__.get("pool", {}).pop((scheme, netloc), None)
    if connection is not None:
        connection.close()


def _quote(body: bytes) -> str:
    text = body[:QUOTED].decode("utf-8", "replace")
    return " ".join(text.split())


#: TLS failures that another try may not meet (the connection dropped, not refused).
_TRANSIENT_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
_TLS_ADVICE = (
    "a TLS configuration error, not retried: check the URL's scheme and port (https:// to "
    "a plain http port?) and the server's certificate, then replay the event"
)


def _misconfigured(exc: BaseException) -> bool:
    """A TLS failure the same request would meet again: a certificate the system's CAs do
    not trust (or for another host), a server that does not speak TLS on that port."""
    return isinstance(exc, ssl.SSLError) and not isinstance(exc, _TRANSIENT_TLS)


def _failed(url: str, exc: BaseException, timeout: float, watchdog: _Watchdog) -> WebhookError:
    """The failure, its text cleared of the URL's path and query (http.client quotes them)."""
    why = _why(exc, timeout, watchdog)
    parts = urlsplit(url)
    for secret in sorted((url, parts.path, parts.query), key=len, reverse=True):
        if len(secret) > 1:
            why = why.replace(secret, "…")
    return WebhookError(f"POST {shown(url)} failed: {why}")


def _why(exc: BaseException, timeout: float, watchdog: _Watchdog) -> str:
    if watchdog.fired or isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s (timeout)"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
