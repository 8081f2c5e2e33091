"""What the names in a topology point at: handlers and ``dont_retry`` exception types.

The model (:mod:`hubbub.topology.model`) only checks that a name is well
formed; this module imports what it names and checks that it can work, so
a typo or a wrong shape fails ``hubbub topology validate`` and the start of
a consumer, not an event at run time. Every function returns problems as
strings (each one line saying what is wrong and what to do) so callers
report them all at once, as the rest of validation does.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hubbub.callables import is_async_generator
from hubbub.errors import HandlerImportError, TopologyError
from hubbub.topology import settings
from hubbub.topology.masking import UNKNOWN, Visibility
from hubbub.topology.model import Subscriber


def resolve_handler(ref: str) -> Callable[..., Any]:
    """Import ``package.module:function`` and return the callable."""
    target = resolve(ref, "handler")
    if not callable(target):
        raise HandlerImportError(f"handler {ref!r} is not callable")
    return target  # type: ignore[no-any-return]


def resolve(ref: str, what: str) -> Any:
    """Import ``package.module:name`` and return what it names (``what``: for the error).

    Raises HandlerImportError, one line naming the reference and why.
    """
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise HandlerImportError(f"{what} {ref!r} is not package.module:name")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as exc:
        raise HandlerImportError(
            f"cannot import {what} {ref!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return target


def handler_problems(handler: Callable[..., Any], ref: str) -> list[str]:
    """Why ``handler`` (known to the user as ``ref``) cannot handle events; [] when it can.

    A handler is called with one positional argument, the event (and its
    settings as the keyword ``settings``, when it has that parameter: see
    :mod:`hubbub.topology.settings`), and must
    do its work before it returns (a plain def) or before its coroutine
    finishes (an ``async def``, awaited on an event loop): a generator
    function, sync or async, returns a generator whose body never runs.
    """
    if inspect.isgeneratorfunction(handler) or is_async_generator(handler):
        return [
            f"handler {ref!r} is a generator function (it yields), so its body would never "
            "run: make it a plain def or an async def that returns"
        ]
    return _signature_problems(handler, ref)


def _signature_problems(handler: Callable[..., Any], ref: str) -> list[str]:
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return []  # some C callables have no signature: nothing to check them against
    extra = {settings.PARAMETER: object()} if settings.parameter(handler) is not None else {}
    try:
        signature.bind(object(), **extra)
    except TypeError as exc:
        return [
            f"handler {ref!r} must accept exactly one positional argument, the event, "
            f"but its signature is {signature} ({exc}): write it as def handler(event)"
        ]
    return []


def subscriber_problems(
    subscriber: Subscriber,
    handler: Callable[..., Any],
    ref: str | None = None,
    *,
    environment: bool = True,
) -> list[str]:
    """Every problem of one subscriber's handler, settings and ``dont_retry`` names,
    keyed by where; those of where it runs (an unset variable a setting names) only
    with ``environment`` (see :mod:`hubbub.topology.settings`).

    ``ref`` names the handler in messages (default: the subscriber's reference).
    Settings already bound to ``handler`` were checked when they were bound.
    """
    where = f"subscribers.{subscriber.name}"
    ref = ref or subscriber.handler
    problems = [f"{where}.handler: {p}" for p in handler_problems(handler, ref)]
    if handler is not _well_formed and not problems and not settings.is_bound(handler):
        problems += settings.problems(subscriber, handler, ref, environment=environment)
    for index, name in enumerate(subscriber.retry.dont_retry):
        problems += [f"{where}.retry.dont_retry[{index}]: {p}" for p in exception_problems(name)]
    return problems


#: ``(subscriber, handler)`` pairs found without problems, by subscriber name.
Passed = dict[str, tuple[Subscriber, Callable[..., Any]]]


def resolve_handlers(
    subscribers: Iterable[Subscriber],
    given: Mapping[str, Callable[..., Any]] | None = None,
    *,
    passed: Passed | None = None,
) -> tuple[dict[str, Callable[..., Any]], list[str]]:
    """Import and check the handlers of ``subscribers`` (and only theirs).

    ``given`` supplies handlers already in hand by subscriber name (e.g.
    decorated functions); the others are imported from their references,
    on every call (a test may have replaced a module's function). Returns
    the handlers that import and pass the checks, their settings bound (see
    :mod:`hubbub.topology.settings`), and every problem found. ``passed``, kept by
    a caller that resolves often (the in-memory hub, on every run), skips
    the checks of a pair already found good: they cost ~40 us a subscriber.
    """
    given = given or {}
    handlers: dict[str, Callable[..., Any]] = {}
    problems: list[str] = []
    for sub in subscribers:
        handler = given.get(sub.name)
        if handler is None and (handler := _imported(sub, problems)) is None:
            continue
        known = passed.get(sub.name) if passed is not None else None
        if known is None or known[0] is not sub or known[1] is not handler:
            found = subscriber_problems(sub, handler)
            problems += found
            if found:
                continue
            if passed is not None:
                passed[sub.name] = (sub, handler)
        handlers[sub.name] = settings.bind(sub, handler)
    return handlers, problems


def check_handlers(subscribers: Iterable[Subscriber], *, environment: bool = True) -> list[str]:
    """Every problem of the handlers of ``subscribers``, imported from their references and
    checked, none bound: validation alone. Without ``environment``, the problems of where
    it runs are left out (:func:`environment_problems` lists them)."""
    problems: list[str] = []
    for sub in subscribers:
        handler = _imported(sub, problems)
        if handler is not None:
            problems += subscriber_problems(sub, handler, environment=environment)
    return problems


def _imported(sub: Subscriber, problems: list[str]) -> Callable[..., Any] | None:
    """``sub``'s handler, imported; None, its problems added to ``problems``, when it
    does not import (its ``dont_retry`` names are checked all the same)."""
    try:
        return resolve_handler(sub.handler)
    except HandlerImportError as exc:
        problems.append(f"subscribers.{sub.name}.handler: {exc}")
        problems += subscriber_problems(sub, _well_formed)
        return None


def environment_problems(subscribers: Iterable[Subscriber]) -> list[str]:
    """What would stop a consumer of ``subscribers`` starting here though the file is right:
    a setting naming an environment variable that is not set (see
    :mod:`hubbub.topology.settings`). Handlers that do not import or check are skipped:
    :func:`check_handlers` reports them."""
    found: list[str] = []
    for sub in subscribers:
        try:
            handler = resolve_handler(sub.handler)
        except HandlerImportError:
            continue
        if not handler_problems(handler, sub.handler):
            found += settings.environment_problems(sub, handler, sub.handler)
    return found


def refuse_unusable(
    subscribers: Iterable[Subscriber], handlers: Mapping[str, Callable[..., Any]], *, source: str
) -> None:
    """Raise :class:`TopologyError` listing every problem of handlers given in code.

    For a consumer handed callables directly (a :class:`~hubbub.Worker`):
    the messages name each callable, not the topology's reference to it.
    """
    problems = [
        p
        for sub in subscribers
        if sub.name in handlers
        for p in subscriber_problems(sub, handlers[sub.name], describe(handlers[sub.name]))
    ]
    if problems:
        raise TopologyError(problems, source=source)


def describe(handler: Callable[..., Any]) -> str:
    """``module:qualname`` of a function or class, else the object's type."""
    target = handler if inspect.isroutine(handler) or isinstance(handler, type) else None
    inner = getattr(handler, "func", None)  # functools.partial
    if target is None and inner is not None and inspect.isroutine(inner):
        return f"partial({describe(inner)})"
    if target is None:
        target = type(handler)
    module = getattr(target, "__module__", "?")
    return f"{module}:{getattr(target, '__qualname__', repr(target))}"


def _well_formed(event: Any) -> None:
    """A handler without problems, standing in for one that did not import."""


def exception_problems(name: str) -> list[str]:
    """Why ``dont_retry`` entry ``name`` matches no exception; [] when it names one.

    A bare name must be a built-in exception (``KeyError``); any other
    type is written ``package.module.Name`` (nested classes with dots), and
    must be where it is defined: hubbub matches a raised exception by its
    class's ``__module__`` and ``__qualname__``, so a re-export
    (``requests.HTTPError``) would never match.
    """
    if "." not in name:
        found = getattr(builtins, name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return []
        return [
            f"{name!r} is not a built-in exception: write the full path of the type, "
            "e.g. shop.errors.PaymentDeclined"
        ]
    try:
        found = _import_dotted(name)
    except ImportError as exc:
        return [f"cannot import {name!r}: {exc}"]
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        return [f"{name!r} is not an exception type (it is {type(found).__name__})"]
    defined = f"{found.__module__}.{found.__qualname__}"
    if defined != name and not (found.__module__ == "builtins" and found.__qualname__ == name):
        return [
            f"{name!r} is defined as {defined!r}: write that name "
            "(an exception is matched by where its type is defined)"
        ]
    return []


def _import_dotted(name: str) -> Any:
    """The object ``a.b.C.D`` names: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            target: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # this prefix is not a module: try a shorter one
            raise ImportError(f"importing {module_name} failed: {exc}") from exc
        except Exception as exc:
            raise ImportError(
                f"importing {module_name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        for depth, attr in enumerate(parts[cut:], start=cut):
            if not hasattr(target, attr):
                owner = ".".join(parts[:depth])
                raise ImportError(f"{owner} has no attribute {attr!r}")
            target = getattr(target, attr)
        return target
    raise ImportError(f"no module named {parts[0]!r}")


def visibility_of(ref: str) -> Visibility:
    """What the settings type of handler ``ref`` says about its keys; UNKNOWN when it does
    not import (``plan`` then shows only numbers and true/false of its settings)."""
    try:
        return settings.visibility(resolve_handler(ref))
    except Exception:  # noqa: BLE001 - any failure to import means: not known
        return UNKNOWN
