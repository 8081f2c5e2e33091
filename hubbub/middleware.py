"""Middleware: code of the user's own around every handler and every publish.

A middleware has two hooks, both pass-through by default, so one overrides
only what it needs:

- ``consume(event, call_next)`` wraps a plain def handler, and
  ``async def aconsume(event, call_next)`` an ``async def`` handler (in its
  task: ``return await call_next(event)``). A middleware with a ``consume``
  hook of its own but no ``aconsume`` cannot wrap an async handler, and
  says so when the worker is built (hooking only ``consume`` around a
  coroutine would end before the handler ran). ``consume`` runs on the
  handler's own thread (the consumer's handler thread; the in-memory hub's caller),
  inside the handler's context: a tracing span opened or a database session
  bound before ``call_next(event)`` is active while the handler runs, and
  ``hubbub.publish`` inside it goes where the handler's publishes go. What
  it raises (or lets through) is the handler's failure: the subscriber's
  retry policy decides (:mod:`hubbub.consumers.retry`), and raising
  :class:`~hubbub.errors.DontRetry` dead-letters the event at once.
- ``publish(message, call_next)`` sees each event's
  :class:`~hubbub.message.Outbound` once it is built and before it is
  handed to the broker (``publish``, each event of ``publish_many``,
  ``apublish``, the kombu publisher, events handlers publish). It runs on
  the publishing thread (for ``apublish``: on the event loop, so it must not
  block) and returns the message to send: ``call_next(message)``'s result,
  or a replacement (``dataclasses.replace``, ``Message.with_headers``).
  It does not wait for the broker's confirm; raising refuses the publish
  (nothing is sent; for a batch, nothing of it).

Order: a list ``[a, b]`` runs ``a`` outermost: ``a`` before ``b`` on the
way in, after it on the way out, on both paths. A hub's middlewares wrap a
subscriber's own (``@hub.subscriber(..., middleware=[...])``). Chains are
compiled once, when a worker (or publisher) is built: per event they cost
one call per middleware, and nothing at all without middlewares.

See ``docs/middleware.md`` for examples and what stays outside middleware.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from hubbub.callables import is_async
from hubbub.message import Outbound

if TYPE_CHECKING:
    from hubbub.envelope import Event

#: What a consume hook calls to run the rest of the chain (and the handler).
NextHandler = Callable[["Event"], Any]
#: What an ``aconsume`` hook awaits to run the rest of the chain (and the async handler).
NextAsyncHandler = Callable[["Event"], Awaitable[Any]]
#: What a publish hook calls to run the rest of the chain; returns the message to send.
NextPublish = Callable[[Outbound], Outbound]


class Middleware:
    """Base class of a middleware: both hooks pass through; override one or both.

    Not required: any object with a ``consume`` and/or ``publish`` method of
    these signatures is a middleware. One instance serves every thread, so
    keep per-event state in locals or thread-locals, not on ``self``.
    """

    def consume(self, event: Event, call_next: NextHandler) -> Any:
        """Run around the handler, on its thread; return what ``call_next(event)`` returned."""
        return call_next(event)

    async def aconsume(self, event: Event, call_next: NextAsyncHandler) -> Any:
        """Run around an ``async def`` handler, in its task; return ``await call_next(event)``."""
        return await call_next(event)

    def publish(self, message: Outbound, call_next: NextPublish) -> Outbound:
        """Run as ``message`` is published; return the message to send."""
        return call_next(message)


def consuming(middlewares: Sequence[Any], handler: NextHandler) -> NextHandler:
    """``handler`` wrapped in the ``consume`` hooks of ``middlewares``, first one outermost.

    An ``async def`` handler is wrapped in the ``aconsume`` hooks, and stays
    an ``async def``; a middleware hooking ``consume`` alone is refused for
    it (TypeError saying what to add). Returns ``handler`` itself when no
    middleware hooks it. The wrapper keeps the handler's signature for the
    checks :mod:`hubbub.topology.references` makes.
    """
    if is_async(handler):
        return _aconsuming(middlewares, handler)
    return _chain(_hooks(middlewares, "consume"), handler, _step)


def _aconsuming(middlewares: Sequence[Any], handler: NextHandler) -> NextHandler:
    sync_only = [m for m in middlewares if _own(m, "consume") and not _own(m, "aconsume")]
    if sync_only:
        name = type(sync_only[0]).__name__
        raise TypeError(
            f"middleware {name} has a consume hook but no aconsume, so it cannot wrap the "
            f"async def handler {getattr(handler, '__qualname__', handler)!r}: give it "
            "'async def aconsume(self, event, call_next)' that returns await call_next(event)"
        )
    return _chain(_hooks(middlewares, "aconsume"), handler, _astep)


def _chain(
    hooks: list[Callable[[Any, Any], Any]],
    handler: NextHandler,
    step: Callable[[Callable[[Any, Any], Any], Callable[[Any], Any]], Callable[[Any], Any]],
) -> NextHandler:
    """``handler`` inside ``hooks`` (first outermost), each link made by ``step``;
    ``handler`` itself when there are none."""
    if not hooks:
        return handler
    chain = handler
    for hook in reversed(hooks):
        chain = step(hook, chain)
    return functools.wraps(handler)(chain)


def _own(middleware: Any, name: str) -> bool:
    """``middleware`` has a ``name`` hook that does more than pass through."""
    hook = getattr(type(middleware), name, None)
    return hook is not None and hook is not getattr(Middleware, name)


def publishing(middlewares: Sequence[Any]) -> NextPublish | None:
    """The ``publish`` hooks of ``middlewares`` as one function; None when there are none."""
    hooks = _hooks(middlewares, "publish")
    if not hooks:
        return None
    chain: NextPublish = _sent
    for hook in reversed(hooks):
        chain = _step(hook, chain)
    return chain


def _hooks(middlewares: Sequence[Any], name: str) -> list[Callable[[Any, Any], Any]]:
    """The bound ``name`` hooks of ``middlewares`` that do more than pass through."""
    return [getattr(m, name) for m in middlewares if _own(m, name)]


def _step(hook: Callable[[Any, Any], Any], call_next: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One link of a chain: ``hook`` with the rest of the chain as its ``call_next``."""

    def step(value: Any) -> Any:
        return hook(value, call_next)

    return step


def _astep(
    hook: Callable[[Any, Any], Any], call_next: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """One link of an async chain (an ``async def``, so the chain is one too)."""

    async def step(value: Any) -> Any:
        return await hook(value, call_next)

    return step


def _sent(message: Outbound) -> Outbound:
    """The end of a publish chain: the message as the middlewares left it."""
    return message


def check(middlewares: Sequence[Any]) -> tuple[Any, ...]:
    """``middlewares`` as a tuple (chains are compiled from it once, so it does not
    change); raises TypeError naming one that is a class or has neither hook."""
    result = tuple(middlewares)
    for middleware in result:
        if isinstance(middleware, type):
            raise TypeError(
                f"middleware {middleware.__name__} is a class: pass an instance "
                f"({middleware.__name__}(...))"
            )
        if not any(hasattr(middleware, hook) for hook in ("consume", "aconsume", "publish")):
            raise TypeError(
                f"{middleware!r} is not a middleware: give it a consume(event, call_next), "
                "an async aconsume(event, call_next) and/or a publish(message, call_next) "
                "method (or subclass hubbub.Middleware)"
            )
    return result


__all__ = [
    "Middleware",
    "NextAsyncHandler",
    "NextHandler",
    "NextPublish",
    "check",
    "consuming",
    "publishing",
]
