"""What ``plan`` may show of a subscriber's settings, and how it tells a change (pure).

Settings hold what a handler needs, API keys and webhook tokens included,
and ``plan``'s output goes to CI logs and pull requests; the record
``apply`` leaves on the broker is readable by anyone who may read the
vhost's queues. So neither holds a settings value that may be a secret:
each value is kept as a digest (enough to tell *that* it changed) and, where
it is safe, the text ``plan`` shows for it.

Shown: values of keys the handler's settings type declares and does not
mark secret (pydantic ``SecretStr``, ``SecretBytes``, ``Secret[...]``).
Never shown: ``headers`` (API keys travel there), keys whose name says
secret (``token``, ``password``, ``api_key``...) unless the type declares
them plainly, and a URL's path and query (Slack and Teams keep their
secret in the path; many APIs in the query): ``https://crm.example/…``.
Where the handler cannot be imported (its type is unknown), only numbers
and true/false are shown.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit

#: Keys whose values are never shown, at any depth.
ALWAYS_MASKED = frozenset({"headers"})
#: Key names that read as secrets (when the settings type does not declare them plainly).
SECRET_NAME = re.compile(
    r"secret|token|passw|pwd|api.?key|auth|credential|private|cookie|signature|dsn", re.I
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Longest text shown for one value; longer ones are cut with "…".
_LONGEST = 60
#: Stands for a value not shown inside a shown one.
HIDDEN = "'***'"


@dataclass(frozen=True, slots=True)
class Visibility:
    """What a handler's settings type says about its keys (see :func:`settings.visibility`).

    ``declared``: keys the type lists (None: it takes any key, e.g. a dict);
    ``secret``: keys it marks secret. ``UNKNOWN`` stands for a handler that
    could not be imported.
    """

    declared: frozenset[str] | None
    secret: frozenset[str] = frozenset()
    known: bool = True


UNKNOWN = Visibility(None, frozenset(), known=False)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A settings value as the applied record keeps it: its digest, and what plan may show."""

    digest: str
    shown: str | None


def digest(value: Any) -> str:
    """``sha256:<hex>`` of ``value``; equal values (as YAML gives them) give equal digests.

    Dates, timestamps, bytes and NaN go through one fixed conversion, so a
    value read from the file and the same value recorded at apply compare
    equal (YAML's timestamps and ``!!binary`` have no JSON form of their own).
    """
    text = json.dumps(value, sort_keys=True, default=_fallback, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _fallback(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return {"$time": value.isoformat()}
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, set | frozenset):
        return {"$set": sorted(map(repr, value))}
    return {"$repr": repr(value)}


def recorded(settings: Mapping[str, Any], visibility: Visibility) -> dict[str, Recorded]:
    """Each key of ``settings`` as it is recorded and compared (a Recorded stays as is)."""
    return {
        key: value
        if isinstance(value, Recorded)
        else Recorded(digest(value), shown(key, value, visibility))
        for key, value in settings.items()
    }


def shown(key: str, value: Any, visibility: Visibility) -> str | None:
    """The text ``plan`` may print for ``settings[key]``; None: it must not show it."""
    if key in ALWAYS_MASKED or key in visibility.secret:
        return None
    declared = visibility.declared is not None and key in visibility.declared
    if not declared and SECRET_NAME.search(key):
        return None
    if not visibility.known and not _plain_scalar(value):
        return None
    text = _render(value)
    return text if len(text) <= _LONGEST else text[: _LONGEST - 1] + "…"


def _plain_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float)


def _render(value: Any) -> str:
    if isinstance(value, str):
        return repr(masked_url(value) if _URL.match(value) else value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        items = (f"{k}: {HIDDEN if _masked_key(str(k)) else _render(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if value is None or isinstance(value, int | float):
        return str(value)
    return HIDDEN  # bytes, dates and the like: nothing a reviewer reads


def _masked_key(key: str) -> bool:
    return key in ALWAYS_MASKED or bool(SECRET_NAME.search(key))


def masked_url(text: str) -> str:
    """``scheme://host[:port]`` and ``/…`` when there is more (path, query, fragment): what
    may be shown of a URL (Slack and Teams keep their secret in the path)."""
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return text.split("://", 1)[0] + "://…"
    rest = parts.path.strip("/") or parts.query or parts.fragment
    return f"{parts.scheme}://{host}{port}" + ("/…" if rest else "")
