"""How the webhook action checks and shows its URL and header values (pure).

A webhook URL may hold its secret in the query string or the path (Slack,
Teams and Discord incoming webhooks), so nothing here quotes either: not
the problems found at validation, not :func:`shown`, which messages, logs
and failure records use.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be POSTed to; None when it can. Messages do not quote the
    URL's path or query: a webhook URL may hold its secret there."""
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        return "the URL holds white space or a control character (a pasted line break?): remove it"
    if not url.isascii():
        return "the URL holds a non-ASCII character: percent-encode it (%C3%A9 for é)"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "the URL does not start with http:// or https://: write the whole URL"
    if not parts.hostname:
        return "the URL has no host: write the whole URL, e.g. https://crm.example.com/hook"
    if parts.username or parts.password:
        return (
            "the URL holds credentials: remove them and send them in headers "
            "(e.g. Authorization) instead"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 and parts.netloc.rpartition("]")[2].count(":"):
        return "the URL's port is not a number from 1 to 65535"
    return None


def header_value_problem(text: str) -> str | None:
    """Why a header value cannot be sent (said after its name); None when it can."""
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in text):
        return "has a line break or a control character: remove it"
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return "has a character HTTP headers cannot carry (only Latin-1): write it in ASCII"
    return None


def shown(url: str) -> str:
    """``url`` as messages show it: scheme, host and port, the path masked past a plain
    first segment, and a short hash of the whole URL to tell two hooks apart.

    Incoming webhooks of Slack, Teams and Discord carry their secret in the
    path, others in the query string; messages go to logs and failure
    records, so neither is shown: ``https://hooks.slack.com/services/… [a1b2c3d4]``.
    The hash is the first 8 hex digits of the URL's SHA-256.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    first, _, rest = parts.path.lstrip("/").partition("/")
    if not _WORD.match(first):
        first, rest = "", parts.path.lstrip("/")
    if not rest and not parts.query:
        return f"{parts.scheme}://{host}{port}/{first}"
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    masked = f"{first}/…" if rest else f"{first}?…"
    return f"{parts.scheme}://{host}{port}/{masked.lstrip('/')} [{digest}]"


_WORD = re.compile(r"^[A-Za-z][A-Za-z_.-]{0,23}$")
