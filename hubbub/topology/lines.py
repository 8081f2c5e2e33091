"""Which line of a topology file a problem is about (pure).

Problems name their place as a dotted path (``subscribers.welcome-email.retry.attempts:
must be at least 1``, ``subscribers.a.topics[1]: ...``, ``subscribers.a.settings.url:
...``), whoever found them: the model, a handler's import, a handler's settings. A
non-developer finds a line faster than a path, so the path is looked up in the
file's YAML node tree (composed, not constructed: nodes keep their position).
A path whose last keys are missing from the file (a required key left out)
points at the deepest part that is there: the subscriber, or its ``settings:``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import yaml

#: What may follow a path's last part that the file holds: more path, or the message.
_MISSING_TAIL = re.compile(r"^(?:\.[^\s:\[]+|\[\d+\])+: ")
_INDEX = re.compile(r"^\[(\d+)\]")
#: Names longer than this are shortened to 57 characters and "..." in problems.
_SHORTENED = 60


def compose(text: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> yaml.Node | None:
    """The YAML node tree of ``text`` (None when it does not parse)."""
    try:
        return yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return None


def lines_of(root: yaml.Node | None, problems: Sequence[str]) -> list[int | None]:
    """The 1-based line of each problem's dotted path in ``root`` (None: no place in the file)."""
    return [line_of(root, p) for p in problems]


def line_of(root: yaml.Node | None, problem: str) -> int | None:
    """The line of the place ``problem`` starts with, or of its deepest part in the file."""
    place = place_of(root, problem)
    return None if place is None else place[0]


def place_of(root: yaml.Node | None, problem: str) -> tuple[int, int] | None:
    """``(line, column)`` of :func:`line_of`'s place: problems sort by it into file order
    (several keys of a ``{...}`` mapping share a line)."""
    _, rest, place = _walk(root, problem)
    if place is None:
        return None
    if rest.startswith(": ") or not rest or _MISSING_TAIL.match(rest):
        return place
    return None


def text_of(root: yaml.Node | None, problem: str) -> str | None:
    """The text the file holds at the place ``problem`` starts with (``yes``, not true);
    None when that place is not a plain value in the file."""
    node, rest, place = _walk(root, problem)
    if place is None or not rest.startswith(": ") or not isinstance(node, yaml.ScalarNode):
        return None
    return str(node.value)


def _walk(
    root: yaml.Node | None, problem: str
) -> tuple[yaml.Node | None, str, tuple[int, int] | None]:
    """The deepest node of ``problem``'s path in the file, what is left of it, and its place."""
    node, rest, place, first = root, problem, None, True
    while node is not None:
        step = _step(node, rest, first=first)
        if step is None:
            break
        node, rest, place = step
        first = False
    return node, rest, place


def _step(
    node: yaml.Node, rest: str, *, first: bool
) -> tuple[yaml.Node, str, tuple[int, int]] | None:
    """The child of ``node`` that ``rest`` names next: (child, what is left, its place)."""
    if isinstance(node, yaml.SequenceNode):
        match = _INDEX.match(rest)
        if not match or int(match[1]) >= len(node.value):
            return None
        item = node.value[int(match[1])]
        return item, rest[match.end() :], _place(item)
    if not isinstance(node, yaml.MappingNode):
        return None
    sep = "" if first else "."
    if not rest.startswith(sep):
        return None
    rest = rest[len(sep) :]
    best: tuple[yaml.Node, str, tuple[int, int]] | None = None
    for key_node, value in _entries(node):
        taken = _taken(str(key_node.value), rest)
        if taken and (best is None or taken > len(rest) - len(best[1])):
            best = value, rest[taken:], _place(key_node)
    return best


def _place(node: yaml.Node) -> tuple[int, int]:
    """A node's 1-based line and column."""
    return node.start_mark.line + 1, node.start_mark.column + 1


def _taken(key: str, rest: str) -> int:
    """How many characters of ``rest`` the key ``key`` spans (0: it does not start it)."""
    for shown in (key, key[:57] + "..." if len(key) > _SHORTENED else None):
        if (
            shown
            and rest.startswith(shown)
            and rest[len(shown) : len(shown) + 1] in ("", ".", "[", ":")
        ):
            return len(shown)
    return 0


def _entries(node: yaml.MappingNode) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    """A mapping's scalar keys and values, those merged in with ``<<: *anchor`` after its own."""
    merged: list[yaml.Node] = []
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag == "tag:yaml.org,2002:merge":
            merged += value.value if isinstance(value, yaml.SequenceNode) else [value]
        elif isinstance(key, yaml.ScalarNode):
            yield key, value
    for other in merged:
        if isinstance(other, yaml.MappingNode):
            yield from _entries(other)
