"""Sessions, authentication, CSRF and response headers of the console.

- A session is a signed cookie (HMAC-SHA256 with the console's secret)
  holding the user who logged in, the session's CSRF token and a one-shot
  notice. It is ``HttpOnly``, ``SameSite=Strict`` and ``Secure`` over HTTPS.
  Nothing else is kept server side, so replicas sharing a secret agree.
- Every POST must carry the session's CSRF token in its form (checked in
  constant time), on top of ``SameSite=Strict``.
- Scripts may skip the login page with ``Authorization: Bearer <token>`` or
  HTTP basic auth; they still need a CSRF token to act.
- :class:`SecurityHeaders` adds to every response what a scanner expects:
  a CSP without ``unsafe-inline`` (the pages load one script and one style
  sheet of their own), framing refused, no sniffing, no referrer, and
  ``no-store`` so event data is never cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.console.settings import Auth

COOKIE = "hubbub_console"
#: Seconds a login lasts.
SESSION_SECONDS = 12 * 3600

HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
#: Pages may hold event data: never stored by a browser or a proxy. Static files may be.
NO_STORE = "no-store"


@dataclass
class Session:
    """One browser's session: who logged in, its CSRF token, a notice to show once."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    user: str | None = None
    notice: str | None = None
    changed: bool = True
    #: When the session began (seconds since the epoch): it ends :data:`SESSION_SECONDS` later.
    issued: int = field(default_factory=lambda: int(time.time()))

    def pop_notice(self) -> str | None:
        notice, self.notice = self.notice, None
        if notice is not None:
            self.changed = True
        return notice


def sign(session: Session, secret: bytes) -> str:
    payload = json.dumps(
        {"c": session.csrf, "u": session.user, "n": session.notice, "t": session.issued}
    )
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")  # no quoting
    return f"{body}.{_mac(body, secret)}"


def unsign(cookie: str | None, secret: bytes, *, now: float | None = None) -> Session | None:
    """The session in ``cookie``, or None when it is missing, forged, damaged or expired.

    The expiry is checked here, not left to the cookie's ``Max-Age``: a
    copied cookie stops working too.
    """
    if not cookie or "." not in cookie:
        return None
    body, _, mac = cookie.rpartition(".")
    if not hmac.compare_digest(mac, _mac(body, secret)):
        return None
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), str):
        return None
    issued = data.get("t")
    if not isinstance(issued, int) or (now or time.time()) - issued > SESSION_SECONDS:
        return None
    user, notice = data.get("u"), data.get("n")
    return Session(
        data["c"],
        user if isinstance(user, str) else None,
        notice if isinstance(notice, str) else None,
        changed=False,
        issued=issued,
    )


def _mac(body: str, secret: bytes) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def load(request: Request, secret: bytes) -> Session:
    """The request's session, or a new one (sent back with the response)."""
    return unsign(request.cookies.get(COOKIE), secret) or Session()


def store(response: Response, session: Session, secret: bytes, *, https: bool) -> None:
    if session.changed:
        response.set_cookie(
            COOKIE,
            sign(session, secret),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=https,
            path="/",
        )


def check_login(auth: Auth, *, user: str, password: str) -> str | None:
    """The name to log actions under when the credentials are right, else None.

    Compared in constant time; a token login is named ``token``.
    """
    if auth.token is not None:
        return "token" if _same(password, auth.token) else None
    assert auth.user is not None and auth.password is not None
    right_user = _same(user, auth.user)
    right_password = _same(password, auth.password)
    return auth.user if right_user and right_password else None


def from_header(auth: Auth, header: str | None) -> str | None:
    """The user an ``Authorization`` header proves (Bearer token or Basic), else None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and auth.token is not None:
        return check_login(auth, user="", password=value.strip())
    if scheme.lower() == "basic" and auth.user is not None:
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, binascii.Error):
            return None
        return check_login(auth, user=user, password=password)
    return None


def csrf_ok(session: Session, token: str | None) -> bool:
    return token is not None and _same(token, session.csrf)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class SecurityHeaders:
    """ASGI middleware: :data:`HEADERS` on every response, ``no-store`` on all but static."""

    def __init__(self, app: ASGIApp, *, static_prefix: str = "/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(self.static_prefix)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode().lower() not in HEADERS and k.decode().lower() != "cache-control"
                ]
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                cache = "max-age=300" if static else NO_STORE
                headers.append((b"cache-control", cache.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
