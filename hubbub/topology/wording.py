"""pydantic's complaints about a topology file, in the words of the people who edit it (pure).

pydantic names Python types ("Input should be a valid tuple", "... a valid
dictionary"); the file's editors write YAML. Each message here says what to
write instead. The loader (subscriber keys) and the settings check (a
handler's settings) both use it, so one value reads the same wherever it is.
"""

from __future__ import annotations

import re
from typing import Any

from hubbub.topology.durations import format_duration

#: pydantic's wording of a bound, as the people who edit the file read it.
_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be more than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
}
#: Keys whose values are durations: their bounds are written as durations (``49d``).
DURATIONS = ("delay", "timeout", "backoff", "max_backoff")
_LISTS = ("list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type")
_TEXT = ("string_type", "str_type")
#: How :func:`quote_it` ends when it does not know the word the file holds.
_QUOTE = re.compile(r"YAML reads (\S+) without quotes as (true|false): quote it: '\1'$")


def plain(err: Any, where: str) -> str:
    """pydantic's message for one error (from ``errors()``) in the file's words."""
    kind = err["type"]
    given = err.get("input")
    ctx = err.get("ctx") or {}
    if kind in _BOUNDS:
        key, text = _BOUNDS[kind]
        bound = ctx.get(key)
        if isinstance(bound, int | float):
            duration = where.rpartition(".")[2] in DURATIONS
            return text.format(format_duration(bound) if duration else format(bound, "g"))
    if kind == "missing":
        return "required: add this key"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"give at least {least} item{'s' if least != 1 else ''}"
    if kind == "too_long":
        most = ctx.get("max_length")
        return f"give at most {most} item{'s' if most != 1 else ''}"
    if kind in _TEXT and isinstance(given, bool):
        return quote_it(given)
    if kind in _LISTS:
        return "write a list: [first, second] (or one item per line starting with '- ')"
    if kind == "dict_type":
        return "write key: value lines, indented under this key"
    return str(err["msg"]).removeprefix("Value error, ")


def quote_it(value: bool, word: str | None = None) -> str:
    """Text wanted, YAML read true/false (``yes``, ``no``, ``on``, ``off``...)."""
    read = str(value).lower()
    word = word or read
    return f"must be text: YAML reads {word} without quotes as {read}: quote it: '{word}'"


def with_word(problem: str, word: str) -> str:
    """``problem`` saying ``word`` (the file's own, e.g. ``yes``) when it is a :func:`quote_it`."""
    match = _QUOTE.search(problem)
    if match is None or match[1] == word:
        return problem
    return problem[: match.start()] + quote_it(match[2] == "true", word).removeprefix(
        "must be text: "
    )
