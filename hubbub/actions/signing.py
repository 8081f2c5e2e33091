"""The webhook signature: HMAC-SHA256 over the timestamp and the body (pure).

The header (:data:`HEADER`) reads ``t=<unix seconds>,v1=<hex digest>``,
where the digest is ``HMAC-SHA256(secret, "<t>." + body)``: the scheme
Stripe uses. Signing the timestamp with the body lets a receiver refuse a
captured request replayed later (:data:`TOLERANCE`), and ``v1=`` leaves room
for a second scheme during a change of algorithm or a secret rotation (a
receiver accepts the request when any ``v1`` matches).

A receiver verifies with :func:`verify` (Python) or by hand: split the
header on ``,`` then ``=``, check ``t`` is within five minutes of now,
compute the digest of ``t + "." + raw body`` with the shared secret and
compare it with ``v1`` in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

#: The request header carrying the signature.
HEADER = "Hubbub-Signature"
#: Seconds a receiver accepts between the signature's timestamp and its clock.
TOLERANCE = 300


class SignatureError(ValueError):
    """A webhook request whose signature is missing, malformed, stale or wrong."""


def sign(secret: str | bytes, body: bytes, *, timestamp: int | None = None) -> str:
    """The :data:`HEADER` value for ``body`` sent at ``timestamp`` (default: now)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},v1={digest(secret, at, body)}"


def digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    secret: str | bytes,
    body: bytes,
    header: str | None,
    *,
    tolerance: float = TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a received request; returns its timestamp, raises :class:`SignatureError`.

    ``body`` must be the raw bytes received, before any JSON parsing.
    """
    if not header:
        raise SignatureError(f"no {HEADER} header")
    parts = [p.partition("=") for p in header.split(",")]
    stamps = [v for k, _, v in parts if k.strip() == "t"]
    given = [v.strip() for k, _, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not given:
        raise SignatureError(f"malformed {HEADER} header: expected t=<seconds>,v1=<hex>")
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise SignatureError(f"signature timestamp {timestamp} is outside the tolerance")
    expected = digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, v) for v in given):
        raise SignatureError("signature does not match the body")
    return timestamp
