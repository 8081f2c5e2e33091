"""The topology as a picture: topic patterns on the left, subscribers on the right (pure).

Server-rendered SVG, laid out here as plain coordinates; the template only
draws them. Each pattern a subscriber binds is one node (patterns shared by
several subscribers are drawn once), so the picture reads like the broker's
bindings: an event whose topic matches a pattern goes to every subscriber
that pattern points to. Patterns no subscriber uses are not shown; topics
nothing matches end in the unrouted queue, drawn apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.topology.model import Topology

ROW = 34
TOP = 20
LEFT_X = 10
RIGHT_X = 430
NODE_W = 220
NODE_H = 24


@dataclass(frozen=True, slots=True)
class Node:
    label: str
    x: int
    y: int
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True, slots=True)
class Graph:
    patterns: tuple[Node, ...]
    subscribers: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def layout(topology: Topology, *, href: str = "") -> Graph:
    """Coordinates of every node and edge; ``href`` prefixes each subscriber's link."""
    patterns: list[str] = []
    for subscriber in topology.subscribers:
        patterns.extend(p for p in subscriber.topics if p not in patterns)
    left = {p: Node(p, LEFT_X, TOP + i * ROW) for i, p in enumerate(patterns)}
    names = [s.name for s in topology.subscribers]
    right = {n: Node(n, RIGHT_X, TOP + i * ROW, f"{href}/dlq/{n}") for i, n in enumerate([*names])}
    unrouted = Node("(no match: unrouted)", RIGHT_X, TOP + len(names) * ROW + ROW // 2)
    edges = [
        Edge(
            LEFT_X + NODE_W,
            left[p].y + NODE_H // 2,
            RIGHT_X,
            right[s.name].y + NODE_H // 2,
        )
        for s in topology.subscribers
        for p in s.topics
    ]
    rows = max(len(patterns), len(names) + 2)
    return Graph(
        tuple(left.values()),
        (*right.values(), unrouted),
        tuple(edges),
        RIGHT_X + NODE_W + LEFT_X,
        TOP * 2 + rows * ROW,
    )
