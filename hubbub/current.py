"""Where a publish goes right now: the hub that delivered the event being handled,
and the in-memory hub that stands in for the broker while a test runs.

:func:`publish` and :func:`publish_many` (exported as ``hubbub.publish`` and
``hubbub.publish_many``) are for handlers: they publish through whatever runs
the handler (a consumer's :class:`~hubbub.consumers.worker.Worker` through
its own connection, an :class:`~hubbub.testing.InMemoryHub` into memory, a
:class:`~hubbub.testing.LiveHub` through its recording publisher), and the
events carry the handled event's correlation id and its id as causation id.
So a handler needs no hub object of its own, and the same handler publishes
into memory under test and to the broker in production. Outside a handler
they raise :class:`NotInHandlerError`: there is no hub to pick.

While an in-memory hub is *active* (:func:`stand_in`, done by
``InMemoryHub``), every other :class:`~hubbub.Hub` of the process stays off
the broker: one with the same hub name publishes into the in-memory hub
(:func:`stand_in_for`), any other raises :class:`BrokerOffLimitsError`
naming it. This is what keeps an app's module-level ``Hub`` from reaching a
real broker in an in-memory test.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from hubbub.callables import is_async
from hubbub.errors import HubbubError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from hubbub.envelope import Event
    from hubbub.producers.message import OutgoingEvent, PublishOptions, Topics
    from hubbub.producers.publisher import Publisher


class NotInHandlerError(HubbubError):
    """``hubbub.publish`` was called outside a handler."""


class BrokerOffLimitsError(HubbubError):
    """A real hub tried to reach the broker while an in-memory hub stands in for it."""


class Target(Protocol):
    """What a handler's publishes go through: a Hub or a Publisher."""

    def publish(
        self, topic: Topics, data: Any = None, **options: Unpack[PublishOptions]
    ) -> str: ...

    def publish_many(self, events: Iterable[OutgoingEvent]) -> list[str]: ...

    async def apublish(
        self, topic: Topics, data: Any = None, **options: Unpack[PublishOptions]
    ) -> str: ...

    async def apublish_many(self, events: Iterable[OutgoingEvent]) -> list[str]: ...


_target: ContextVar[Target | None] = ContextVar("hubbub_publish_target", default=None)

_OUTSIDE = (
    "hubbub.{}() publishes through the hub that delivered the event being handled, "
    "so it works inside a handler only; use hub.{}() elsewhere"
)


def publish(topic: Topics, data: Any = None, **options: Unpack[PublishOptions]) -> str:
    """Publish from inside a handler, through the hub that delivered its event.

    The same arguments and guarantee as :meth:`hubbub.Hub.publish` (returns
    the id once the broker confirmed); the event carries the handled event's
    correlation id and its id as causation id. Raises NotInHandlerError
    outside a handler.
    """
    return _current("publish").publish(topic, data, **options)


def publish_many(events: Iterable[OutgoingEvent]) -> list[str]:
    """:meth:`hubbub.Hub.publish_many` from inside a handler (see :func:`publish`)."""
    return _current("publish_many").publish_many(events)


async def apublish(topic: Topics, data: Any = None, **options: Unpack[PublishOptions]) -> str:
    """:func:`publish` for ``async def`` handlers: awaits the confirm, the loop keeps running."""
    return await _current("apublish").apublish(topic, data, **options)


async def apublish_many(events: Iterable[OutgoingEvent]) -> list[str]:
    """:func:`publish_many` for ``async def`` handlers (see :func:`apublish`)."""
    return await _current("apublish_many").apublish_many(events)


def _current(what: str) -> Target:
    target = _target.get()
    if target is None:
        raise NotInHandlerError(_OUTSIDE.format(what, what))
    return target


@contextmanager
def publishing_through(target: Target) -> Iterator[None]:
    """Run a handler (the block) with ``hubbub.publish`` going through ``target``."""
    token = _target.set(target)
    try:
        yield
    finally:
        _target.reset(token)


def through(
    handler: Callable[[Event], Any], target: Callable[[], Target]
) -> Callable[[Event], Any]:
    """``handler``, with ``hubbub.publish`` going through ``target()`` while it runs.

    Wrapping the handler (not its caller) keeps this true on whatever thread
    the handler ends up on; an ``async def`` handler stays one (set in its
    own task's context).
    """
    if is_async(handler):

        @functools.wraps(handler)
        async def arun(event: Event) -> Any:
            token = _target.set(target())
            try:
                return await handler(event)
            finally:
                _target.reset(token)

        return arun

    @functools.wraps(handler)
    def run(event: Event) -> Any:
        token = _target.set(target())  # not the context manager: this is per delivery
        try:
            return handler(event)
        finally:
            _target.reset(token)

    return run


# -- in-memory stand-ins --------------------------------------------------------


class StandIn(Protocol):
    """An in-memory hub, as the registry sees it."""

    name: str

    @property
    def publisher(self) -> Publisher: ...


_stand_ins: list[StandIn] = []
_lock = threading.Lock()


def stand_in(hub: StandIn) -> None:
    """Make ``hub`` stand in for the broker: from now on no other hub reaches it."""
    with _lock:
        if hub not in _stand_ins:
            _stand_ins.append(hub)


def withdraw(hub: StandIn | None = None) -> None:
    """Stop ``hub`` (default: every in-memory hub) standing in for the broker."""
    with _lock:
        if hub is None:
            _stand_ins.clear()
        elif hub in _stand_ins:
            _stand_ins.remove(hub)


def stand_in_for(hub: str, *, to: str) -> Publisher | None:
    """The publisher a real hub named ``hub`` must use instead of the broker, if any.

    None while no in-memory hub is active (the usual case, one list check);
    the newest active in-memory hub of that name otherwise; raises
    BrokerOffLimitsError when only hubs of other names are active. ``to``
    says what the real hub was about to do, for the error.
    """
    if not _stand_ins:
        return None
    with _lock:
        same = [h for h in _stand_ins if h.name == hub]
        others = sorted({h.name for h in _stand_ins})
    if same:
        return same[-1].publisher
    raise BrokerOffLimitsError(
        f"hub {hub!r} would {to} the real broker during an in-memory test (in-memory hubs: "
        f"{', '.join(map(repr, others))}): build an InMemoryHub({hub!r}) in the test too, "
        "or publish with hubbub.publish() inside handlers"
    )


def refuse_broker(hub: str, *, to: str) -> None:
    """Raise BrokerOffLimitsError if an in-memory hub is active (nothing to redirect to)."""
    if _stand_ins:
        with _lock:
            names = sorted({h.name for h in _stand_ins})
        raise BrokerOffLimitsError(
            f"hub {hub!r} would {to} the real broker during an in-memory test (in-memory hubs: "
            f"{', '.join(map(repr, names))}): use the in-memory hub in the test instead"
        )
