"""The routes that read: login, overview, topology, dead letters, groups, one event."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from hubbub.admin.sources import UNROUTED
from hubbub.console import graph, security, views
from hubbub.console.security import Session
from hubbub.console.web import Ctx, Web, read_form

log = logging.getLogger(__name__)


class Pages(Web):
    """Routes that only read (GET), and the login and logout."""

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
            form = await read_form(request)
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
