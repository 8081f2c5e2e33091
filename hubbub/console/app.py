"""The console as an ASGI app: its routes (see docs/console.md).

Reading routes live in :mod:`~hubbub.console.pages`, acting ones in
:mod:`~hubbub.console.actions`, what they share in :mod:`~hubbub.console.web`.
Blocking admin calls run in worker threads (:mod:`~hubbub.console.service`).
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hubbub.console import security
from hubbub.console.actions import Actions
from hubbub.console.pages import Pages
from hubbub.console.service import ConsoleService
from hubbub.console.settings import ConsoleSettings
from hubbub.console.web import HERE


def create_app(service: ConsoleService, settings: ConsoleSettings) -> Starlette:
    """The console as an ASGI app (serve it with uvicorn; see :mod:`hubbub.cli.console`)."""
    if not settings.secret:
        settings = _with_secret(settings)
    pages = Console(service, settings)
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
    return replace(settings, secret=secrets.token_bytes(32))


class Console(Pages, Actions):
    """Every route of one console."""
