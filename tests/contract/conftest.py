"""One contract, two hubs: every test here runs on the in-memory hub and on the real broker.

A test gets a hub factory; the hub it builds is an InMemoryHub or a LiveHub
(in a vhost of its own) with the same API: decorators, publish,
``run_until_idle()``, ``run_until(done, within=...)``, ``clock.time()`` and
the assertion helpers. A test that passes on the broker and fails in memory
found a bug in the in-memory hub.

Every test runs twice on each hub: with its handlers as written (plain
def) and with each one turned into an ``async def`` that yields to the
event loop before doing the same work, so every behaviour (acks, retries,
``Retry(after=)``, dead-letters, publishing from handlers, delays) is held
to the same contract for async handlers.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hubbub.callables import is_async
from hubbub.testing import InMemoryHub, LiveHub

Hub = InMemoryHub | LiveHub


@pytest.fixture(params=["sync", "async"])
def handler_kind(request: pytest.FixtureRequest) -> str:
    """How the test's handlers run: as written, or as ``async def`` handlers."""
    return str(request.param)


@pytest.fixture(params=["memory", pytest.param("broker", marks=pytest.mark.integration)])
def make_hub(request: pytest.FixtureRequest, handler_kind: str) -> Iterator[Callable[[], Hub]]:
    """Build the hub under test (call it, then decorate subscribers on it)."""
    made: list[Hub] = []
    # Set up before the hubs, so the vhost is deleted only after they closed.
    url = request.getfixturevalue("hubbub_vhost_url") if request.param == "broker" else None

    def make() -> Hub:
        hub: Hub = InMemoryHub("events") if url is None else LiveHub("events", url=url)
        if handler_kind == "async":
            hub.subscriber = as_async(hub.subscriber)  # type: ignore[method-assign]
        made.append(hub)
        return hub

    yield make
    for hub in made:
        hub.close()


def as_async(subscriber: Callable[..., Any]) -> Callable[..., Any]:
    """A hub's ``subscriber`` decorator that registers each plain handler as an async def.

    The async handler yields to its loop once, then does the plain one's
    work in its task (raising what it raises); the decorated name still
    refers to the plain function, as the test wrote it.
    """

    def decorate(name: str, **options: Any) -> Callable[[Any], Any]:
        register = subscriber(name, **options)

        def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
            if is_async(func):
                return register(func)  # type: ignore[no-any-return]

            @functools.wraps(func)
            async def handler(event: Any) -> Any:
                await asyncio.sleep(0)
                return func(event)

            register(handler)
            return func

        return wrap

    return decorate
