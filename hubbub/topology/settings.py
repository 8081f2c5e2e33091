"""A subscriber's ``settings:``, checked against what its handler declares it accepts.

A handler takes settings through a keyword parameter named ``settings``;
its annotation is the schema (a pydantic model, a dataclass, a TypedDict,
``dict[str, int]``: anything pydantic validates). The file's values are
validated once, before any event runs (``hubbub topology validate``, a
consumer's start, the test hubs), and bound to the handler with
:func:`functools.partial`, so each event costs what it cost without
settings: the handler is called ``handler(event, settings=value)``.

People who do not read Python edit these values, so every problem is one
line starting with where it is (``subscribers.<name>.settings.<key>: ...``)
and saying what to do; unknown keys are reported wherever the type lists
its keys (a model with ``extra="allow"`` and a plain ``dict`` take any).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from pydantic import (
    BaseModel,
    PydanticUserError,
    Secret,
    SecretBytes,
    SecretStr,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import is_typeddict

from hubbub.errors import TopologyError
from hubbub.topology.masking import UNKNOWN, Visibility
from hubbub.topology.model import Subscriber
from hubbub.topology.wording import plain

#: The keyword a handler takes its settings by.
PARAMETER = "settings"

_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def parameter(handler: Callable[..., Any]) -> inspect.Parameter | None:
    """The handler's ``settings`` parameter (annotation resolved where it can be); None
    when it takes none (or its signature cannot be read, as for some C callables)."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return None
    found = signature.parameters.get(PARAMETER)
    if found is None or found.kind not in _KEYWORD:
        return None
    try:  # a string annotation (from __future__ import annotations), evaluated
        return inspect.signature(handler, eval_str=True).parameters[PARAMETER]
    except Exception:  # noqa: BLE001 - reported as an annotation that does not resolve
        return found


def is_bound(handler: Callable[..., Any]) -> bool:
    """True when ``handler`` (or what it wraps) already has its settings bound."""
    target = inspect.unwrap(handler)
    return isinstance(target, functools.partial) and PARAMETER in target.keywords


def problems(subscriber: Subscriber, handler: Callable[..., Any], ref: str) -> list[str]:
    """Every problem of ``subscriber.settings`` for ``handler`` (``ref`` in messages)."""
    return _validated(subscriber, handler, ref)[1]


def bind(subscriber: Subscriber, handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` with the subscriber's validated settings bound, once.

    Returned as is when it takes no settings, has them bound already, or
    was given none and has a default of its own. Raises
    :class:`TopologyError` when the settings do not validate.
    """
    if is_bound(handler):
        return handler
    value, found = _validated(subscriber, handler, subscriber.handler)
    if found:
        raise TopologyError(found, source=f"subscriber {subscriber.name!r}")
    if value is _UNBOUND:
        return handler
    return _named(functools.partial(handler, settings=value), handler)


def _named(bound: functools.partial[Any], handler: Callable[..., Any]) -> Callable[..., Any]:
    """``bound`` under ``handler``'s name, for messages and middleware that name handlers.

    Not ``functools.update_wrapper``: its ``__wrapped__`` would make the
    partial's signature read as the unbound handler's.
    """
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        value = getattr(handler, attribute, None)
        if value is not None:
            setattr(bound, attribute, value)
    return bound


_UNBOUND = object()


def _validated(
    subscriber: Subscriber, handler: Callable[..., Any], ref: str
) -> tuple[Any, list[str]]:
    """``(value to bind, [])``, ``(_UNBOUND, [])`` or ``(None, problems)``."""
    where = f"subscribers.{subscriber.name}.settings"
    given = subscriber.settings
    param = parameter(handler)
    if param is None:
        if not given:
            return _UNBOUND, []
        return None, [
            f"{where}: handler {ref!r} takes no settings: remove them or add a "
            "`settings` parameter to the handler"
        ]
    if not given and param.default is not inspect.Parameter.empty:
        return _UNBOUND, []
    schema = dict[str, Any] if param.annotation is inspect.Parameter.empty else param.annotation
    if isinstance(schema, str):
        return None, [
            f"{where}: cannot resolve the annotation {schema!r} of the settings of {ref!r}: "
            "import the type where the handler is defined"
        ]
    try:
        adapter = _adapter(schema)
    except (PydanticUserError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        return None, [f"{where}: the settings type of {ref!r} cannot validate: {first}"]
    found = _unknown(schema, given, where)
    try:
        value = adapter.validate_python(given)
    except ValidationError as exc:
        return None, found + _described(exc, given, where, ref)
    return (None, found) if found else (value, [])


def _adapter(schema: Any) -> TypeAdapter[Any]:
    """One adapter per type (building one costs milliseconds; the in-memory hub checks often)."""
    try:
        hash(schema)
    except TypeError:  # an Annotated with unhashable metadata: build it each time
        return TypeAdapter(schema)
    return _cached_adapter(schema)


@functools.lru_cache(maxsize=256)
def _cached_adapter(schema: Any) -> TypeAdapter[Any]:
    return TypeAdapter(schema)


def _described(exc: ValidationError, given: dict[str, Any], where: str, ref: str) -> list[str]:
    errors = [e for e in exc.errors(include_url=False) if e["type"] != "extra_forbidden"]
    if not given and errors and all(e["type"] == "missing" for e in errors):
        keys = ", ".join(str(e["loc"][0]) for e in errors if e["loc"])
        return [f"{where}: handler {ref!r} needs settings ({keys}): add them under settings"]
    lines = []
    for error in errors:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        own = error["msg"].removeprefix("Value error, ")
        message = "required: add it" if error["type"] == "missing" else plain(error, path)
        if message == own and error["type"] not in ("value_error", "assertion_error"):
            message += f" (got {error['input']!r})" if _scalar(error) else ""
        lines.append(f"{where}{path}: {message}")
    return lines


def _scalar(error: Any) -> bool:
    return isinstance(error.get("input"), str | int | float | bool) or error.get("input") is None


def _unknown(schema: Any, given: dict[str, Any], where: str) -> list[str]:
    known = _keys(schema)
    if known is None:
        return []
    listed = ", ".join(sorted(known)) or "none"
    return [
        f"{where}.{key}: unknown key (known: {listed}): check the spelling"
        for key in given
        if key not in known
    ]


def _keys(schema: Any) -> set[str] | None:
    """The keys ``schema`` accepts; None when it takes any (a dict, ``extra="allow"``)."""
    if get_origin(schema) is Annotated:
        schema = get_args(schema)[0]
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        if schema.model_config.get("extra") == "allow":
            return None
        keys = set()
        for name, field in schema.model_fields.items():
            keys.add(name)
            if isinstance(field.alias, str):
                keys.add(field.alias)
            if isinstance(field.validation_alias, str):
                keys.add(field.validation_alias)
        return keys
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        return {f.name for f in dataclasses.fields(schema)}
    if is_typeddict(schema):
        return set(schema.__required_keys__) | set(schema.__optional_keys__)
    return None


def visibility(handler: Callable[..., Any]) -> Visibility:
    """Which settings keys ``handler``'s settings type declares, and which it marks secret.

    ``plan`` shows the values of declared keys that are not secret (see
    :mod:`hubbub.topology.masking`); a type it cannot read counts as unknown.
    """
    param = parameter(handler)
    if param is None or param.annotation is inspect.Parameter.empty:
        return Visibility(None)
    schema = param.annotation
    if isinstance(schema, str):
        return UNKNOWN
    if get_origin(schema) is Annotated:
        schema = get_args(schema)[0]
    hints = _field_types(schema)
    keys = _keys(schema)
    secret = frozenset(k for k, t in hints.items() if _secret(t))
    return Visibility(None if keys is None else frozenset(keys), secret)


def _field_types(schema: Any) -> dict[str, Any]:
    """Each field of ``schema`` and its type ({} for a type without named fields)."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        found = {}
        for name, field in schema.model_fields.items():
            for key in (name, field.alias, field.validation_alias):
                if isinstance(key, str):
                    found[key] = field.annotation
        return found
    if (isinstance(schema, type) and dataclasses.is_dataclass(schema)) or is_typeddict(schema):
        try:
            return get_type_hints(schema, include_extras=True)
        except Exception:  # noqa: BLE001 - an unresolvable hint: every key counts as secret
            keys = _keys(schema) or set()
            return {key: SecretStr for key in keys}
    return {}


def _secret(annotation: Any) -> bool:
    """True when ``annotation`` is (or holds, as in ``SecretStr | None``) a pydantic secret."""
    for part in (annotation, get_origin(annotation)):
        if isinstance(part, type) and issubclass(part, SecretStr | SecretBytes | Secret):
            return True
    return any(_secret(arg) for arg in get_args(annotation) if arg is not annotation)
