"""The routes that act: replay, replay an edited copy, delete (each logged by the service)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hubbub.admin.edit import parse as parse_data
from hubbub.console import views
from hubbub.console.web import Ctx, Web
from hubbub.errors import ConfigurationError


class Actions(Web):
    """Routes that change a queue (POST, guarded with ``act=True``); each redirects back
    to the page it came from with a notice saying what was done, or that nothing was."""

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
