"""The console's routes: pages that read, forms that act (see docs/console.md).

Every route goes through :func:`_guarded`: the session is loaded, the user
authenticated, and a POST refused unless it carries the session's CSRF
token (and, in read-only mode, refused outright). Blocking admin calls run
in worker threads. Errors become one masked line on the page.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hubbub.admin.edit import parse as parse_data
from hubbub.admin.sources import UNROUTED
from hubbub.connection import mask
from hubbub.console import graph, security, views
from hubbub.console.security import Session
from hubbub.console.service import ConsoleService
from hubbub.console.settings import ConsoleSettings, loopback_host_header
from hubbub.errors import ConfigurationError, HubbubError

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: Largest form accepted (an edited event's data included).
MAX_FORM = 2 * 1024 * 1024

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


def create_app(service: ConsoleService, settings: ConsoleSettings) -> Starlette:
    """The console as an ASGI app (serve it with uvicorn; see :mod:`hubbub.cli.console`)."""
    if not settings.secret:
        settings = _with_secret(settings)
    pages = _Pages(service, settings)
    routes = [
        Route("/healthz", pages.healthz),
        Route("/login", pages.login, methods=["GET", "POST"]),
        Route("/logout", pages.guarded(pages.logout), methods=["POST"]),
        Route("/", pages.guarded(pages.overview)),
        Route("/fragment/overview", pages.guarded(pages.overview_fragment)),
        Route("/topology", pages.guarded(pages.topology)),
        Route("/dlq/{name}", pages.guarded(pages.dead_letters)),
        Route("/dlq/{name}/groups", pages.guarded(pages.groups)),
        Route("/dlq/{name}/events/{event_id}", pages.guarded(pages.event)),
        Route("/dlq/{name}/replay", pages.guarded(pages.replay, act=True), methods=["POST"]),
        Route("/dlq/{name}/purge", pages.guarded(pages.purge, act=True), methods=["POST"]),
        Route(
            "/dlq/{name}/events/{event_id}/edit",
            pages.guarded(pages.replay_edited, act=True),
            methods=["POST"],
        ),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(security.SecurityHeaders)
    return app


def _with_secret(settings: ConsoleSettings) -> ConsoleSettings:
    from dataclasses import replace

    return replace(settings, secret=secrets.token_bytes(32))


class _Pages:
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
            form = await _form(request) if request.method == "POST" else {}
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
            status = 400 if isinstance(exc, ConfigurationError) else 502
            return self._refuse(request, session, str(exc), status)

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

        The whole page goes through :func:`~hubbub.connection.mask`: no URL
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
        ctx.session.notice = mask(notice)
        ctx.session.changed = True
        return RedirectResponse(f"{ctx.base}{path}", status_code=303)

    # -- pages --------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def login(self, request: Request) -> Response:
        session = security.load(request, self.settings.secret)
        auth = self.settings.auth
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith(("//", "/\\")):
            target = "/"  # only our own pages: no open redirect
        base = str(request.scope.get("root_path", "")).rstrip("/")
        problem = None
        if auth is None:
            response: Response = RedirectResponse(f"{base}/", status_code=303)
        elif request.method == "POST":
            form = await _form(request)
            fields = {k: (v or [""])[0] for k, v in form.items()}
            user = None
            if security.csrf_ok(session, fields.get("csrf")):
                user = security.check_login(
                    auth, user=fields.get("user", ""), password=fields.get("password", "")
                )
            where = request.client.host if request.client else "?"
            if user is None:
                log.warning("console: failed login from %s", where)
                problem = "wrong credentials (or a stale form: try again)"
            else:
                log.info("console: %s logged in from %s", user, where)
                session = Session(user=user)  # a new CSRF token with the new identity
                response = RedirectResponse(f"{base}{target}", status_code=303)
        if auth is not None and (request.method == "GET" or problem):
            response = self.render(
                request, session, "login.html",
                {"kind": auth.kind, "problem": problem, "next": target},
                status=401 if problem else 200,
            )  # fmt: skip
        security.store(response, session, self.settings.secret, https=request.url.scheme == "https")
        return response

    async def logout(self, ctx: Ctx) -> Response:
        log.info("console: %s logged out", ctx.user)
        ctx.session.user, ctx.session.changed = None, True
        return RedirectResponse(f"{ctx.base}/login", status_code=303)

    async def overview(self, ctx: Ctx) -> Response:
        overview = await run_in_threadpool(self.service.overview)
        return self.render(ctx.request, ctx.session, "overview.html", {"o": overview})

    async def overview_fragment(self, ctx: Ctx) -> Response:
        overview = await run_in_threadpool(self.service.overview)
        return self.render(
            ctx.request, ctx.session, "overview_table.html", {"o": overview}, fragment=True
        )

    async def topology(self, ctx: Ctx) -> Response:
        topology = self.service.admin.topology
        picture = graph.layout(topology, href=ctx.base) if topology is not None else None
        return self.render(ctx.request, ctx.session, "topology.html", {"g": picture})

    async def dead_letters(self, ctx: Ctx) -> Response:
        name = ctx.request.path_params["name"]
        params = dict(ctx.request.query_params)
        query = views.query_from(params, size=self.settings.page_size)
        page = await run_in_threadpool(self.service.page, name, query)
        filters = views.filters_from(params)
        return self.render(
            ctx.request, ctx.session, "dead_letters.html",
            {
                "name": name, "page": page, "query": query, "filters": filters,
                "unrouted": name == UNROUTED, "qs": urlencode(filters),
                "order": "newest" if query.newest_first else "oldest",
            },
        )  # fmt: skip

    async def groups(self, ctx: Ctx) -> Response:
        name = ctx.request.path_params["name"]
        tally = await run_in_threadpool(self.service.tally, name)
        return self.render(
            ctx.request, ctx.session, "groups.html",
            {"name": name, "tally": tally, "unrouted": name == UNROUTED}, fragment=True,
        )  # fmt: skip

    async def event(self, ctx: Ctx) -> Response:
        name = ctx.request.path_params["name"]
        event_id = ctx.request.path_params["event_id"]
        event = await run_in_threadpool(self.service.event, name, event_id)
        if event is None:
            return self._refuse(
                ctx.request, ctx.session,
                f"no event {event_id} in {name} (replayed or purged meanwhile?)", 404,
            )  # fmt: skip
        data, problem = event.data, event.data_problem
        editable = views.pretty(data) if problem is None else event.body_text()
        return self.render(
            ctx.request, ctx.session, "event.html",
            {
                "name": name, "e": event, "data_problem": problem, "editable": editable,
                "headers": views.headers(event.headers), "trace": _trace_id(event.headers),
                "history": [views.pretty(h) for h in event.history],
            },
        )  # fmt: skip

    # -- actions ------------------------------------------------------------

    async def replay(self, ctx: Ctx) -> Response:
        name = ctx.request.path_params["name"]
        selection, back = self._chosen(ctx, name)
        result = await run_in_threadpool(
            lambda: self.service.replay(name, selection, user=ctx.user)
        )
        if result.moved:
            notice = f"replayed {result.moved} event(s) to {result.target}"
        else:
            notice = f"nothing to replay: no event matched {selection.describe()}"
        if result.skipped:
            left = ", ".join(f"{why} ({n})" for why, n in result.skipped.items())
            notice += f"; left {sum(result.skipped.values())} event(s) in place: {left}"
        return self._back(ctx, back, notice)

    async def purge(self, ctx: Ctx) -> Response:
        name = ctx.request.path_params["name"]
        selection, back = self._chosen(ctx, name)
        if ctx.field("confirm").strip() != name:
            return self._back(
                ctx, back, f"nothing deleted: type {name} in the confirmation box to delete"
            )
        result = await run_in_threadpool(lambda: self.service.purge(name, selection, user=ctx.user))
        if result.purged:
            notice = f"deleted {result.purged} event(s) of {name} for good"
        else:
            notice = f"nothing to delete: no event matched {selection.describe()}"
        return self._back(ctx, back, notice)

    async def replay_edited(self, ctx: Ctx) -> Response:
        name = ctx.request.path_params["name"]
        event_id = ctx.request.path_params["event_id"]
        data = parse_data(ctx.field("data"), source="the console")
        await run_in_threadpool(
            lambda: self.service.replay_edited(name, event_id, data, user=ctx.user)
        )
        return self._back(ctx, f"/dlq/{name}", f"replayed an edited copy of event {event_id}")

    def _chosen(self, ctx: Ctx, name: str) -> tuple[Any, str]:
        """The events a form picks (ticked ids, or the filter it carries) and where to go back.

        Ticked ids win; without them the form must say ``scope=filter``, so an
        empty tick list never means "everything".
        """
        fields = {k: ctx.field(k) for k in views.FILTER_KEYS}
        back = f"/dlq/{name}?{urlencode({k: v for k, v in fields.items() if v})}"
        ids = [i for i in ctx.form.get("id", []) if i.strip()]
        if ctx.field("scope") == "filter":
            return views.selection_from(fields), back
        if not ids:
            raise ConfigurationError("no event ticked: tick the events to act on")
        return views.selection_from({}, ids), back


async def _form(request: Request) -> Form:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise ConfigurationError("the form is too large")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _trace_id(headers: Any) -> str | None:
    """The event's trace id, when the publisher put one in (W3C ``traceparent`` or ours)."""
    for key in ("hubbub-trace-id", "trace-id", "traceparent", "x-trace-id"):
        value = headers.get(key)
        if value:
            text = views.header_value(value)
            if key == "traceparent" and text.count("-") >= 3:
                return text.split("-")[1]
            return text
    return None
