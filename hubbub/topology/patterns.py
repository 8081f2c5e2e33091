"""Routing keys and topic patterns, with RabbitMQ's exact topic semantics.

A topic is dot-separated words. In a pattern ``*`` stands for exactly one
word and ``#`` for zero or more. These functions are pure so the in-memory
hub and the unit tests route exactly as the broker does.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

#: AMQP 0-9-1 caps routing keys (shortstr) at 255 bytes.
MAX_KEY_BYTES = 255


def topic_problems(topic: str) -> list[str]:
    """Why ``topic`` cannot be published as an event topic (empty: it can)."""
    problems = _common_problems(topic, "topic")
    if any(word in ("*", "#") for word in topic.split(".")):
        problems.append(f"topic {topic!r} contains a wildcard; wildcards belong in patterns")
    return problems


def pattern_problems(pattern: str) -> list[str]:
    """Why ``pattern`` cannot be bound as a subscriber pattern (empty: it can)."""
    problems = _common_problems(pattern, "pattern")
    for word in pattern.split("."):
        if word not in ("*", "#") and ("*" in word or "#" in word):
            problems.append(
                f"pattern {pattern!r}: {word!r} mixes a wildcard with text; "
                "'*' and '#' must be whole words (e.g. 'user.*')"
            )
    return problems


def _common_problems(key: str, what: str) -> list[str]:
    if not key:
        return [f"{what} is empty"]
    problems = []
    if len(key.encode()) > MAX_KEY_BYTES:
        problems.append(f"{what} {key[:40]!r}... is over {MAX_KEY_BYTES} bytes")
    if any(word == "" for word in key.split(".")):
        problems.append(f"{what} {key!r} has an empty word (leading, trailing or double dot)")
    if any(ch.isspace() for ch in key):
        problems.append(f"{what} {key!r} contains white space")
    return problems


def matches(pattern: str, key: str) -> bool:
    """True when the broker would route ``key`` through a binding of ``pattern``.

    As in RabbitMQ, the empty key (or pattern) has no words at all: ``#``
    matches it and ``*`` does not; ``"."`` is two empty words.
    """
    return _match(_words(pattern), _words(key))


def _words(key: str) -> tuple[str, ...]:
    return tuple(key.split(".")) if key else ()


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


#: Most keys :func:`covers` tries; past it, a pattern covers only itself.
_MOST_TRIED = 4096


def covers(wide: str, narrow: str) -> bool:
    """True when every key ``narrow`` matches, ``wide`` matches too (``user.#`` covers ``user.*``).

    ``narrow`` is tried with each ``*`` as a word ``wide`` does not name and each
    ``#`` as 0 to len(wide)+1 such words: a longer run matches the way one of
    that length does (``wide`` holds fewer single-word parts), so trying them
    decides it exactly.
    """
    if wide == narrow:
        return True
    want, have = _words(wide), _words(narrow)
    fresh = "".join(want) + "~"  # longer than any word of ``wide``: none of them
    lengths = range(len(want) + 2)
    if len(lengths) ** have.count("#") > _MOST_TRIED:
        return False
    return all(_match(want, key) for key in _keys(have, fresh, lengths))


def _keys(pattern: tuple[str, ...], fresh: str, lengths: range) -> Iterator[tuple[str, ...]]:
    """The keys standing for all ``pattern`` matches (see :func:`covers`)."""
    if not pattern:
        yield ()
        return
    head, rest = pattern[0], pattern[1:]
    for tail in _keys(rest, fresh, lengths):
        if head == "#":
            for n in lengths:
                yield (fresh,) * n + tail
        else:
            yield (fresh if head == "*" else head, *tail)
