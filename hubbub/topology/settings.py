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

Some problems are not the file's but of where it runs: an environment
variable a setting names (the webhook's ``secret_env``) is set on the
servers that run the subscriber, not in CI nor on a laptop. A validator
raises :func:`environment_problem` for those; ``hubbub topology validate``
reports them as warnings (``problems(..., environment=False)`` and
:func:`environment_problems`), while a consumer, a ``Worker`` and the test
hubs (:func:`bind`) refuse to start with them, as with any other problem.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple, get_args, get_origin, get_type_hints

from pydantic import (
    BaseModel,
    PydanticUserError,
    Secret,
    SecretBytes,
    SecretStr,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError
from typing_extensions import is_typeddict

from hubbub.errors import TopologyError
from hubbub.topology.masking import UNKNOWN, Visibility
from hubbub.topology.model import Subscriber
from hubbub.topology.wording import plain

#: The keyword a handler takes its settings by.
PARAMETER = "settings"

#: The error type of a problem of where hubbub runs, not of the file (see the module doc).
ENVIRONMENT = "environment"

_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def environment_problem(message: str) -> PydanticCustomError:
    """What a settings validator raises when the value is right but where it runs is not
    ready for it (an environment variable it names is unset): ``raise
    environment_problem("environment variable X is not set: ...")``."""
    return PydanticCustomError(ENVIRONMENT, "{message}", {"message": message})


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


def problems(
    subscriber: Subscriber, handler: Callable[..., Any], ref: str, *, environment: bool = True
) -> list[str]:
    """Every problem of ``subscriber.settings`` for ``handler`` (``ref`` in messages); those
    of where it runs (:func:`environment_problems`) only with ``environment``."""
    checked = _validated(subscriber, handler, ref)
    return checked.problems + (checked.environment if environment else [])


def environment_problems(
    subscriber: Subscriber, handler: Callable[..., Any], ref: str
) -> list[str]:
    """The problems of ``subscriber.settings`` that are of where it runs, not of the file."""
    return _validated(subscriber, handler, ref).environment


def bind(subscriber: Subscriber, handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` with the subscriber's validated settings bound, once.

    Returned as is when it takes no settings, has them bound already, or
    was given none and has a default of its own. Raises
    :class:`TopologyError` when the settings do not validate.
    """
    if is_bound(handler):
        return handler
    checked = _validated(subscriber, handler, subscriber.handler)
    found = checked.problems + checked.environment
    if found:
        raise TopologyError(found, source=f"subscriber {subscriber.name!r}")
    if checked.value is _UNBOUND:
        return handler
    return _named(functools.partial(handler, settings=checked.value), handler)


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


class _Checked(NamedTuple):
    """The value to bind (or ``_UNBOUND``; None with problems), the file's problems and
    those of where it runs."""

    value: Any
    problems: list[str]
    environment: list[str] = []


def _validated(subscriber: Subscriber, handler: Callable[..., Any], ref: str) -> _Checked:
    where = f"subscribers.{subscriber.name}.settings"
    given = subscriber.settings
    param = parameter(handler)
    if param is None:
        if not given:
            return _Checked(_UNBOUND, [])
        return _Checked(
            None,
            [
                f"{where}: handler {ref!r} takes no settings: remove them or add a "
                "`settings` parameter to the handler"
            ],
        )
    if not given and param.default is not inspect.Parameter.empty:
        return _Checked(_UNBOUND, [])
    schema = dict[str, Any] if param.annotation is inspect.Parameter.empty else param.annotation
    if isinstance(schema, str):
        return _Checked(
            None,
            [
                f"{where}: cannot resolve the annotation {schema!r} of the settings of {ref!r}: "
                "import the type where the handler is defined"
            ],
        )
    try:
        adapter = _adapter(schema)
    except (PydanticUserError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        return _Checked(None, [f"{where}: the settings type of {ref!r} cannot validate: {first}"])
    found = _unknown(schema, given, where)
    try:
        value = adapter.validate_python(given)
    except ValidationError as exc:
        errors = [e for e in exc.errors(include_url=False) if e["type"] != "extra_forbidden"]
        ours = [e for e in errors if e["type"] != ENVIRONMENT]
        theirs = [e for e in errors if e["type"] == ENVIRONMENT]
        return _Checked(
            None,
            found + _described(ours, given, where, ref),
            _described(theirs, given, where, ref),
        )
    return _Checked(None, found) if found else _Checked(value, [])


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


def _described(errors: list[Any], given: dict[str, Any], where: str, ref: str) -> list[str]:
    if not given and errors and all(e["type"] == "missing" for e in errors):
        keys = ", ".join(str(e["loc"][0]) for e in errors if e["loc"])
        return [f"{where}: handler {ref!r} needs settings ({keys}): add them under settings"]
    lines = []
    for error in errors:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        own = error["msg"].removeprefix("Value error, ")
        message = "required: add it" if error["type"] == "missing" else plain(error, path)
        kept = ("value_error", "assertion_error", ENVIRONMENT)
        if message == own and error["type"] not in kept and _scalar(error):
            message += f" (got {error['input']!r})"
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
