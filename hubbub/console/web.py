"""The plumbing every console route shares: session, login, CSRF, rendering.

Every route goes through :meth:`Web.guarded`: the session is loaded, the
user authenticated, and a POST refused unless it carries the session's CSRF
token (and, in read-only mode, refused outright). Without a login the
console answers only to a loopback ``Host``. Errors become one masked line
on the page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from hubbub.admin.access import AccessRefusedError
from hubbub.admin.browse import QueueBusyError
from hubbub.console import security, views
from hubbub.console.security import Session
from hubbub.console.service import ConsoleService
from hubbub.console.settings import ConsoleSettings, loopback_host_header
from hubbub.console.views import mask
from hubbub.errors import ConfigurationError, HubbubError

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: Largest form accepted (an edited event's data included).
MAX_FORM = 2 * 1024 * 1024
#: Longest notice kept for the next page (characters).
MAX_NOTICE = 600

Form = dict[str, list[str]]


@dataclass
class Ctx:
    """What a route gets: the request, its session, who is asking, the form posted."""

    request: Request
    session: Session
    user: str
    form: Form

    def field(self, key: str, default: str = "") -> str:
        return (self.form.get(key) or [default])[0]

    @property
    def base(self) -> str:
        return str(self.request.scope.get("root_path", "")).rstrip("/")


Handler = Callable[[Ctx], Awaitable[Response]]


class Web:
    """Rendering and the guard around every route (see the module docstring)."""

    def __init__(self, service: ConsoleService, settings: ConsoleSettings) -> None:
        self.service = service
        self.settings = settings
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters.update(
            when=views.when, rate=views.rate, pretty=views.pretty, mask=mask
        )

    # -- plumbing -------------------------------------------------------------

    def guarded(self, handler: Handler, *, act: bool = False) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            session = security.load(request, self.settings.secret)
            user = self._user(request, session)
            if self.settings.auth is None and not loopback_host_header(
                request.headers.get("host", "")
            ):
                response: Response = PlainTextResponse(
                    "this console has no login: it answers only to localhost or a loopback "
                    "address (set HUBBUB_CONSOLE_TOKEN to serve it under another name)",
                    status_code=403,
                )
            elif user is None:
                response = self._to_login(request)
            elif act and self.settings.read_only:
                response = self._refuse(request, session, "this console is read-only", 403)
            else:
                response = await self._checked(handler, request, session, user)
            security.store(
                response, session, self.settings.secret, https=request.url.scheme == "https"
            )
            return response

        return endpoint

    async def _checked(
        self, handler: Handler, request: Request, session: Session, user: str
    ) -> Response:
        """Run ``handler``: a POST only with the session's CSRF token; errors as a page."""
        try:
            form = await read_form(request) if request.method == "POST" else {}
            ctx = Ctx(request, session, user, form)
            if request.method == "POST" and not security.csrf_ok(session, ctx.field("csrf")):
                log.warning(
                    "console: refused a POST to %s without a valid form token from %s",
                    request.url.path, user,
                )  # fmt: skip
                return self._refuse(
                    request, session, "missing or stale form token (reload the page)", 403
                )
            return await handler(ctx)
        except HubbubError as exc:
            log.info("console: %s %s: %s", request.method, request.url.path, exc)
            return self._refuse(request, session, str(exc), status_of(exc))

    def _user(self, request: Request, session: Session) -> str | None:
        """Who asks (``name@address``, for the log), or None when not logged in."""
        where = request.client.host if request.client else "?"
        auth = self.settings.auth
        if auth is None:
            return f"anonymous@{where}"
        name = session.user or security.from_header(auth, request.headers.get("authorization"))
        return f"{name}@{where}" if name else None

    def _to_login(self, request: Request) -> Response:
        if request.method != "GET":
            return PlainTextResponse("log in first", status_code=401)
        base = str(request.scope.get("root_path", "")).rstrip("/")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{base}/login?{urlencode({'next': target})}", status_code=303)

    def _refuse(self, request: Request, session: Session, why: str, status: int) -> Response:
        return self.render(request, session, "error.html", {"why": mask(why)}, status=status)

    def render(
        self,
        request: Request,
        session: Session,
        template: str,
        values: dict[str, Any],
        *,
        status: int = 200,
        fragment: bool = False,
    ) -> HTMLResponse:
        """``template`` filled in; a ``fragment`` (refreshed by script) keeps the notice.

        The whole page goes through :func:`~hubbub.console.views.mask`: no URL
        password, wherever it came from (a status source, an error, a header,
        the event's own data), reaches the browser.
        """
        page = self.templates.get_template(template).render(
            base=str(request.scope.get("root_path", "")).rstrip("/"),
            hub=self.service.hub,
            csrf=session.csrf,
            read_only=self.settings.read_only,
            logged_in=session.user is not None,
            notice=None if fragment else session.pop_notice(),
            refresh=int(self.settings.refresh * 1000),
            **values,
        )
        return HTMLResponse(mask(page), status_code=status)

    def _back(self, ctx: Ctx, path: str, notice: str) -> Response:
        """Redirect to ``path`` (under the root path), showing ``notice`` there once.

        The notice travels in the session cookie: cut short so the cookie
        stays well under the 4 KB a browser keeps.
        """
        notice = mask(notice)
        ctx.session.notice = notice if len(notice) <= MAX_NOTICE else notice[:MAX_NOTICE] + "…"
        ctx.session.changed = True
        return RedirectResponse(f"{ctx.base}{path}", status_code=303)


def status_of(error: HubbubError) -> int:
    """The HTTP status of a page that failed with ``error``."""
    if isinstance(error, AccessRefusedError):
        return 403  # the broker refused the console's user a permission: the page says which
    if isinstance(error, QueueBusyError):
        return 409  # someone else reads the queue right now
    if isinstance(error, ConfigurationError):
        return 400
    return 502  # the broker could not be reached or failed


async def read_form(request: Request) -> Form:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise ConfigurationError("the form is too large")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
