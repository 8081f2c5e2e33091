"""Load a topology file into the validated model, reporting every problem at once.

The file is YAML (``hub:`` plus a ``subscribers:`` mapping keyed by name, and
optionally ``replicas:``, the quorum queues' group size in a cluster).
Problems come back together, each with the file and the key it is about,
so a non-developer can fix them all in one pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from hubbub.errors import HandlerImportError, TopologyError
from hubbub.topology import chains, lines, references
from hubbub.topology.durations import format_duration
from hubbub.topology.model import Subscriber, Topology
from hubbub.topology.references import handler_problems, resolve_handler

__all__ = ["environment_warnings", "from_mapping", "load", "loads", "resolve_handler", "with_lines"]

_ADAPTER = TypeAdapter(Topology)
_SUBSCRIBER = TypeAdapter(Subscriber)


def load(path: str | Path, *, check_handlers: bool = False, environment: bool = True) -> Topology:
    """Read and validate ``path``; with ``check_handlers`` also import and check every
    handler and ``dont_retry`` name (see :mod:`hubbub.topology.references`).

    Without ``environment``, a problem of where it runs rather than of the file
    (an unset variable a setting names) is no problem: ``topology validate``
    warns of those with :func:`environment_warnings`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError([f"cannot read the file: {exc.strerror}"], source=str(path)) from exc
    return loads(text, source=str(path), check_handlers=check_handlers, environment=environment)


def loads(
    text: str, *, source: str = "topology", check_handlers: bool = False, environment: bool = True
) -> Topology:
    """Validate topology YAML held in a string (see :func:`load`).

    Every problem about a place in the file comes with its line
    (:attr:`TopologyError.lines`), whoever found it: the model, a handler's
    import, a handler's settings.
    """
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        line, problem = _yaml_problem(exc)
        raise TopologyError([problem], source=source, lines=[line]) from exc
    try:
        checks = functools.partial(references.check_handlers, environment=environment)
        return _validated(data, source=source, checks=checks if check_handlers else None)
    except TopologyError as exc:
        raise with_lines(exc, text, duplicates=_duplicates(data)) from exc


def environment_warnings(path: str | Path, topology: Topology) -> list[str]:
    """What would stop a consumer of ``topology`` (read from ``path``) starting here though
    the file is right, each ``file:line: problem``: an unset ``secret_env`` variable, say."""
    found = references.environment_problems(topology.subscribers)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    at = lines.lines_of(lines.compose(text, _StrictLoader), found) if found else []
    placed = zip(found, at, strict=True)
    return [f"{path}:{line}: {p}" if line else f"{path}: {p}" for p, line in placed]


def with_lines(
    error: TopologyError, text: str, *, duplicates: Iterable[tuple[int, str]] = ()
) -> TopologyError:
    """``error`` with the line of each problem in ``text`` (the file it is about).

    Callers that check a loaded file again later (``consume`` importing its
    handlers) use it too, with the file's text. ``duplicates`` are the
    problems found while reading the file, with their lines.
    """
    known: dict[str, list[int]] = {}
    for line, problem in duplicates:
        known.setdefault(problem, []).append(line)
    root = lines.compose(text, _StrictLoader)
    found = [
        old or (known[p].pop(0) if known.get(p) else lines.line_of(root, p))
        for p, old in zip(error.problems, error.lines, strict=True)
    ]
    return TopologyError(error.problems, source=error.source, lines=found)


def _validated(
    data: Any, *, source: str, checks: Callable[[Iterable[Subscriber]], list[str]] | None
) -> Topology:
    problems = [p for _, p in _duplicates(data)]
    try:
        topology = from_mapping(data, source=source, earlier=problems)
    except TopologyError as exc:
        if checks is None:
            raise
        # Every problem at once: the handlers that do not import, and the
        # settings of the subscribers that are valid on their own, too.
        more = _handler_problems(_raw_handlers(data))
        found = checks(_valid_subscribers(data))
        raise TopologyError([*exc.problems, *more, *found], source=source) from exc
    if checks is not None:
        problems = checks(topology.subscribers)
        if problems:
            raise TopologyError(problems, source=source)
    return topology


def _handler_problems(handlers: Iterable[tuple[str, str]]) -> list[str]:
    """Import and shape problems of the handlers of a file that is invalid anyway."""
    problems = []
    for name, ref in handlers:
        try:
            found = handler_problems(resolve_handler(ref), ref)
        except HandlerImportError as exc:
            found = [str(exc)]
        problems += [f"subscribers.{name}.handler: {p}" for p in found]
    return problems


def _raw_handlers(data: Any) -> Iterator[tuple[str, str]]:
    """``(subscriber, handler)`` of an unvalidated file, where both are well formed, of the
    subscribers not valid on their own (:func:`_valid_subscribers` checks the others whole)."""
    subs = data.get("subscribers") if isinstance(data, Mapping) else None
    for name, spec in subs.items() if isinstance(subs, Mapping) else ():
        if _subscriber(name, spec) is not None:
            continue
        ref = spec.get("handler") if isinstance(spec, Mapping) else None
        if isinstance(ref, str) and ":" in ref.strip(":"):
            yield str(name), ref


def _valid_subscribers(data: Any) -> list[Subscriber]:
    """The subscribers of an invalid file that are valid on their own."""
    subs = data.get("subscribers") if isinstance(data, Mapping) else None
    found = (_subscriber(n, s) for n, s in subs.items()) if isinstance(subs, Mapping) else ()
    return [sub for sub in found if sub is not None]


def _subscriber(name: Any, spec: Any) -> Subscriber | None:
    if not isinstance(spec, Mapping) or "name" in spec:
        return None
    try:
        return _SUBSCRIBER.validate_python({**spec, "name": name})
    except ValidationError:
        return None


def from_mapping(data: Any, *, source: str = "topology", earlier: Iterable[str] = ()) -> Topology:
    """Validate an already parsed mapping (``hub`` + ``subscribers`` by name)."""
    problems = list(earlier)
    if not isinstance(data, Mapping):
        raise TopologyError(
            [*problems, "the file must be a mapping with 'hub' and 'subscribers'"], source=source
        )
    data = dict(data)
    subs = data.get("subscribers") or {}
    order: list[str] = []
    if isinstance(subs, Mapping):
        order = [str(name) for name in subs]
        data["subscribers"] = [_with_name(name, spec) for name, spec in subs.items()]
        problems += [
            f"subscribers.{name}.name: unknown key (a subscriber's name is its key)"
            for name, spec in subs.items()
            if isinstance(spec, Mapping) and "name" in spec
        ]
    else:
        problems.append("subscribers: must be a mapping of subscriber name to its settings")
        data["subscribers"] = []
    try:
        topology = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise TopologyError([*problems, *_pydantic_problems(exc, order)], source=source) from exc
    problems += chains.loops(topology.subscribers)
    if problems:
        raise TopologyError(problems, source=source)
    return topology


def _with_name(name: Any, spec: Any) -> Any:
    return {**spec, "name": name} if isinstance(spec, Mapping) else spec


def _pydantic_problems(exc: ValidationError, order: list[str]) -> list[str]:
    errors = exc.errors(include_url=False)
    locs = [_where(e["loc"], order) for e in errors]
    problems = []
    for err, where in zip(errors, locs, strict=True):
        # A list whose items failed also reports being "too short": say it once.
        if err["type"] == "too_short" and any(w.startswith(where + "[") for w in locs):
            continue
        msg = _plain(err, where)
        if err["type"] == "unexpected_keyword_argument":
            msg = "unknown key (check the spelling)"
        elif err["type"] == "too_short" and where.endswith(".topics"):
            msg = "give at least one topic pattern"
        problems.append(f"{where}: {msg}" if where else msg)
    return problems


#: pydantic's wording of a bound, as the people who edit the file read it.
_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be more than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
}


#: Keys whose values are durations: their bounds are written as durations (``49d``).
_DURATIONS = ("delay", "timeout", "backoff", "max_backoff")


def _plain(err: Any, where: str) -> str:
    """pydantic's message for ``err``, bounds and missing keys in plain words."""
    if err["type"] in _BOUNDS:
        key, text = _BOUNDS[err["type"]]
        bound = err.get("ctx", {}).get(key)
        if isinstance(bound, int | float):
            duration = where.rpartition(".")[2] in _DURATIONS
            return text.format(format_duration(bound) if duration else format(bound, "g"))
    if err["type"] == "missing":
        return "required: add this key"
    return str(err["msg"]).removeprefix("Value error, ")


def _where(loc: tuple[int | str, ...], order: list[str]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if i == 1 and loc[0] == "subscribers" and isinstance(part, int) and part < len(order):
            name = order[part]
            parts.append(f".{name if len(name) <= 60 else name[:57] + '...'}")
        elif isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else str(part))
    return "".join(parts)


def _yaml_problem(exc: yaml.YAMLError) -> tuple[int | None, str]:
    mark = getattr(exc, "problem_mark", None)
    where = f"column {mark.column + 1}: " if mark else ""
    return (
        mark.line + 1 if mark else None
    ), f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})"


class _Mapping(dict[Any, Any]):
    #: ``(line, problem)`` of each key given twice in this mapping.
    duplicates: list[tuple[int, str]]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that reports duplicate keys instead of silently keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        result = _Mapping(super().construct_mapping(node, deep=True))
        result.duplicates = []
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                result.duplicates.append(
                    (key_node.start_mark.line + 1, f"{key!r} is defined twice")
                )
            seen.add(key)
        return result


def _duplicates(data: Any) -> list[tuple[int, str]]:
    """``(line, problem)`` of every key given twice in the file."""
    if not isinstance(data, _Mapping):
        return []
    found = list(data.duplicates)
    for value in data.values():
        found.extend(_duplicates(value))
    return found


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)
