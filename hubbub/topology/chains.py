"""Republish chains that never end (pure).

A ``republish`` subscriber publishes each event again under its
``settings.topic``; if that topic reaches it again, directly (it matches its
own patterns) or through other ``republish`` subscribers (A to B to A),
every event goes round for ever, thousands a second without a ``delay``,
one per delay with one. Nothing in the broker stops it, so the file is
refused: the loop is found here, before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from hubbub.topology import patterns

#: The handler reference of the built-in republish action.
REPUBLISH = "hubbub.actions:republish"


class _Subscriber(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def handler(self) -> str: ...
    @property
    def topics(self) -> tuple[str, ...]: ...
    @property
    def settings(self) -> dict[str, Any]: ...


def loops(subscribers: Sequence[_Subscriber]) -> list[str]:
    """One problem per republish subscriber on a loop, naming the loop."""
    edges = _edges(subscribers)
    problems = []
    for start in edges:
        path = _path_back(start, edges)
        if path:
            shown = " → ".join([start, *path])
            problems.append(
                f"subscribers.{start}.settings.topic: the republished event comes back to "
                f"{start} ({shown}), so every event would be republished without end: "
                "republish to a topic no subscriber of the chain listens to"
            )
    return problems


def _edges(subscribers: Sequence[_Subscriber]) -> Mapping[str, list[str]]:
    """Republish subscriber -> the republish subscribers its copies reach."""
    chain = {s.name: s for s in subscribers if s.handler == REPUBLISH}
    edges: dict[str, list[str]] = {}
    for name, sub in chain.items():
        targets = list(_targets(sub.settings.get("topic")))
        edges[name] = [
            other.name
            for other in chain.values()
            if any(patterns.matches(p, t) for p in other.topics for t in targets)
        ]
    return edges


def _targets(topic: Any) -> Iterable[str]:
    """The topics a republish subscriber publishes under (what its settings say, if sound)."""
    listed = [topic] if isinstance(topic, str) else topic
    if isinstance(listed, list | tuple):
        yield from (t for t in listed if isinstance(t, str) and not patterns.topic_problems(t))


def _path_back(start: str, edges: Mapping[str, list[str]]) -> list[str]:
    """The shortest way from ``start`` back to itself (empty: none), breadth first."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in edges.get(node, ()):
                if nxt == start:
                    path = [start]
                    while node != start:
                        path.insert(0, node)
                        node = came_from[node]
                    return path
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    return []
