"""The example's web app: FastAPI publishes from an endpoint and consumes in its lifespan.

Run it (the topology is applied at start-up)::

    uvicorn example_app.web:app
    curl -X POST localhost:8000/signups -H 'content-type: application/json' \\
         -d '{"user_id": 1, "name": "Alice", "email": "alice@example.com"}'
    curl localhost:8000/sent

``HUBBUB_URL`` names the broker. The async subscribers of ``web.yaml`` run
as tasks on the app's own event loop while it serves; stopping the server
finishes the events in hand and hands the rest back to the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from example_app.async_actions import MAILBOX
from hubbub import Hub

hub = Hub.from_file(Path(__file__).with_name("web.yaml"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await asyncio.to_thread(hub.apply)  # idempotent; or `hubbub topology apply`
    async with hub.running(["welcome-email", "audit-email"]):
        yield  # the app serves; leaving stops consuming gracefully
    await asyncio.to_thread(hub.close)


app = FastAPI(lifespan=lifespan)


class SignUp(BaseModel):
    user_id: int
    name: str
    email: str


@app.post("/signups", status_code=202)
async def sign_up(signup: SignUp) -> dict[str, str]:
    event_id = await hub.apublish("user.signed_up", signup.model_dump())
    return {"event_id": event_id}  # the broker has confirmed it


@app.get("/sent")
async def sent() -> dict[str, list[dict[str, Any]]]:
    return MAILBOX
