"""Load a topology file into the validated model, reporting every problem at once.

The file is YAML (``hub:`` plus a ``subscribers:`` mapping keyed by name, and
optionally ``replicas:``, the quorum queues' group size in a cluster).
Problems come back together, each with the file and the key it is about,
so a non-developer can fix them all in one pass.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from hubbub.errors import TopologyError
from hubbub.topology import chains, lines, references, wording
from hubbub.topology.model import Subscriber, Topology
from hubbub.topology.references import resolve_handler

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
    places = [
        (old, 0) if old else (known[p].pop(0), 0) if known.get(p) else lines.place_of(root, p)
        for p, old in zip(error.problems, error.lines, strict=True)
    ]
    worded = [_in_its_words(root, p) for p in error.problems]
    # File order: a reader fixes from the top; problems with no line (the whole file) first.
    ordered = sorted(zip(places, worded, strict=True), key=lambda pair: pair[0] or (0, 0))
    return TopologyError(
        [p for _, p in ordered],
        source=error.source,
        lines=[place[0] if place else None for place, _ in ordered],
    )


def _in_its_words(root: Any, problem: str) -> str:
    """``problem`` quoting the file's own word where YAML read ``yes`` as true."""
    word = lines.text_of(root, problem)
    return problem if word is None else wording.with_word(problem, word)


def _validated(
    data: Any, *, source: str, checks: Callable[[Iterable[Subscriber]], list[str]] | None
) -> Topology:
    problems = [p for _, p in _duplicates(data)]
    try:
        topology = from_mapping(data, source=source, earlier=problems)
    except TopologyError as exc:
        if checks is None:
            raise
        # Every problem at once: the handlers that do not import and the
        # settings, of subscribers with other problems too (checked as stand-ins).
        found = checks(_checkable_subscribers(data))
        raise TopologyError(
            [*exc.problems, *_unreported(found, exc.problems)], source=source
        ) from exc
    if checks is not None:
        problems = checks(topology.subscribers)
        if problems:
            raise TopologyError(problems, source=source)
    return topology


def _unreported(found: Iterable[str], reported: Iterable[str]) -> list[str]:
    """``found`` without the problems at or under a place ``reported`` already names."""
    places = [p.partition(": ")[0] for p in reported]
    return [
        p
        for p in found
        if not any(p.startswith(place) and p[len(place)] in ":.[" for place in places)
    ]


def _checkable_subscribers(data: Any) -> list[Subscriber]:
    """Subscribers of an invalid file whose handler and settings can still be checked: the
    valid ones, and stand-ins of the others (their wrong keys left out or replaced)."""
    subs = data.get("subscribers") if isinstance(data, Mapping) else None
    found = (_stand_in(n, s) for n, s in subs.items()) if isinstance(subs, Mapping) else ()
    return [sub for sub in found if sub is not None]


def _stand_in(name: Any, spec: Any) -> Subscriber | None:
    if not isinstance(spec, Mapping) or "name" in spec:
        return None
    shaped, _ = _shaped(str(name), spec)
    try:
        return _SUBSCRIBER.validate_python({**shaped, "name": name})
    except ValidationError as exc:
        wrong = {e["loc"][0] for e in exc.errors() if e["loc"]}
    if wrong & {"name", "handler"}:
        return None
    kept = {k: v for k, v in shaped.items() if k not in wrong}
    kept["topics"] = kept.get("topics", [_STAND_IN])
    try:
        return _SUBSCRIBER.validate_python({**kept, "name": name})
    except ValidationError:
        return None


#: A valid topic pattern standing in for a subscriber's wrong ``topics:``, so that its
#: other keys are checked (the file is refused anyway).
_STAND_IN = "stand-in"


def _shaped(name: str, spec: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``spec`` with the obvious meaning of a wrongly shaped value, and what to write instead.

    ``topics: user.signed_up`` is one topic; ``settings:`` left empty is none.
    What has no obvious meaning (``topics: a, b``, a list under ``settings:``)
    is a problem saying what to write, and a stand-in so the rest is checked.
    """
    shaped = dict(spec)
    shown = name if len(name) <= 60 else name[:57] + "..."
    where = f"subscribers.{shown}"
    problems = []
    topics = shaped.get("topics")
    if isinstance(topics, str):
        words = [w for w in re.split(r"[\s,\[\]]+", topics) if w]
        shaped["topics"] = words[:1] or [_STAND_IN]
        if len(words) != 1:
            listed = ", ".join(words) or "user.signed_up"
            problems.append(f"{where}.topics: write topics as a list: [{listed}]")
    elif topics is None and "topics" in shaped:
        shaped["topics"] = [_STAND_IN]
        problems.append(f"{where}.topics: give at least one topic pattern: [user.signed_up]")
    settings = shaped.get("settings", {})
    if settings is None:
        del shaped["settings"]
    elif not isinstance(settings, Mapping):
        del shaped["settings"]
        problems.append(
            f"{where}.settings: settings are key: value lines, indented under settings: "
            "(leave settings out for none)"
        )
    return shaped, problems


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
    shaped: list[str] = []
    if isinstance(subs, Mapping):
        order = [str(name) for name in subs]
        specs = []
        for name, spec in subs.items():
            if isinstance(spec, Mapping):
                spec, found = _shaped(str(name), spec)
                shaped += found
            specs.append(_with_name(name, spec))
        data["subscribers"] = specs
        problems += shaped
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
        found = _unreported(_pydantic_problems(exc, order), shaped)
        raise TopologyError([*problems, *found], source=source) from exc
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
        msg = wording.plain(err, where)
        if err["type"] == "unexpected_keyword_argument":
            msg = "unknown key (check the spelling)"
        elif err["type"] == "too_short" and where.endswith(".topics"):
            msg = "give at least one topic pattern"
        problems.append(f"{where}: {msg}" if where else msg)
    return problems


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
    """SafeLoader that reports duplicate keys instead of silently keeping the last.

    Keys merged in with ``<<: *anchor`` are not duplicates of the mapping's
    own keys: YAML lets its own keys override them (the way to share a
    webhook's settings and change one), so only the keys written in the
    mapping itself are compared, before the merge folds the others in.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        duplicates = []
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                duplicates.append((key_node.start_mark.line + 1, f"{key!r} is defined twice"))
            seen.add(key)
        result = _Mapping(super().construct_mapping(node, deep=True))
        result.duplicates = duplicates
        return result


_MERGE = "tag:yaml.org,2002:merge"


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
