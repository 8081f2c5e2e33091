"""What kind of callable a handler is: plain or ``async def`` (no imports beyond inspect).

Kept apart so :mod:`hubbub.current` (imported by the pytest plugin, which
every app's test run loads) can tell without loading the topology model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def is_async(handler: Callable[..., Any]) -> bool:
    """True for ``async def`` handlers: functions, partials of them, objects whose
    ``__call__`` is one. Their events run as tasks on an event loop."""
    return _of_kind(handler, inspect.iscoroutinefunction)


def is_async_generator(handler: Callable[..., Any]) -> bool:
    """True for ``async def`` functions that yield (and objects whose ``__call__`` does)."""
    return _of_kind(handler, inspect.isasyncgenfunction)


def _of_kind(handler: Callable[..., Any], test: Callable[[Any], bool]) -> bool:
    if test(handler):
        return True
    inner = getattr(handler, "func", None)  # functools.partial (3.10 does not see through it)
    if inner is not None and test(inner):
        return True
    if inspect.isroutine(handler) or isinstance(handler, type):
        return False
    return test(getattr(type(handler), "__call__", None))  # noqa: B004 - its kind
