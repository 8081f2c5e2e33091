"""What JSON and AMQP can carry: every value they cannot is one PublishError, before sending.

orjson raises a bare ``TypeError`` for a ``Decimal``, ``bytes``, a ``set``,
an int over 64 bits or a non-string key, and silently writes NaN and
±Infinity as ``null`` (JSON has no such numbers); the AMQP client refuses a
float header or a short string over 255 bytes only on the publisher's I/O
thread, after the batch began to go out. Here
each of them becomes a :class:`~hubbub.errors.PublishError` whose one line
names the field path (``data['items'][2]['price']``) or the header, and
what to send instead, raised while the event is built, so nothing is sent.

Cheap on the hot path: the data is serialized once, as before, and only
walked when orjson refused it or when the JSON holds a ``null`` (a NaN or an
Infinity, or a plain ``None``: the walk tells them apart). Headers are
walked only when the caller gave some.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from hubbub.errors import PublishError

#: AMQP short strings (header names, message_id, correlation_id, type): at most 255 bytes.
MAX_SHORT_BYTES = 255
#: orjson's nesting limit (it refuses deeper data, or data that contains itself).
MAX_DEPTH = 254

_HINTS = {
    Decimal: "send it as a string (exact) or a float",
    bytes: "decode it to text or base64-encode it",
    bytearray: "decode it to text or base64-encode it",
    set: "send a list",
    frozenset: "send a list",
    complex: "send its parts as two numbers",
}


def body(data: Any) -> bytes:
    """``data`` as the JSON body of an event; raises PublishError naming what JSON cannot carry."""
    try:
        raw = orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        raise PublishError(f"cannot publish: {data_problem(data) or f'data: {exc}'}") from None
    # orjson writes NaN and Infinity as null. find, not ``in``: for bytes, ``in``
    # first tries the needle as an int and clears a TypeError, twice the cost.
    if raw.find(b"null") != -1 and _has_non_finite(data, 0):
        raise PublishError(f"cannot publish: {data_problem(data) or 'data holds NaN or Infinity'}")
    return raw


def _has_non_finite(value: Any, depth: int) -> bool:
    """Whether ``value`` holds a NaN or an Infinity (the quick walk: floats and containers).

    Plain str, int, bool and None are passed over by type; anything else
    (a dataclass, a float subclass) gets the full walk of :func:`data_problem`.
    """
    kind = type(value)
    if kind is float:
        return not math.isfinite(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind in _PLAIN or depth >= MAX_DEPTH:
        return False
    else:
        return data_problem(value) is not None
    for item in items:
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return True
        elif kind not in _PLAIN and _has_non_finite(item, depth + 1):
            return True
    return False


_PLAIN = frozenset({str, int, bool, type(None)})


def data_problem(data: Any) -> str | None:
    """Why ``data`` (or what part of it) cannot travel as JSON; None when it can."""
    return _walk(data, "data", 0)


def _walk(value: Any, path: str, depth: int) -> str | None:
    kind = type(value)
    if kind is str:
        return _text_problem(value, path)
    if value is None or kind is bool:
        return None
    if kind is float:
        return None if math.isfinite(value) else _non_finite(value, path)
    if kind is int:
        return (
            None
            if -(2**63) <= value < 2**64
            else f"{path} = {value} is beyond 64 bits; "
            + ("JSON readers lose its digits: send it as a string")
        )
    if depth >= MAX_DEPTH:
        return f"data nests deeper than {MAX_DEPTH} levels (or contains itself)"
    if isinstance(value, dict):  # orjson takes dicts, not any Mapping
        return _walk_mapping(value, path, depth)
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _walk(item, f"{path}[{index}]", depth + 1)
            if problem:
                return problem
        return None
    if is_dataclass(value) and not isinstance(value, type):
        for spec in fields(value):
            problem = _walk(getattr(value, spec.name), f"{path}.{spec.name}", depth + 1)
            if problem:
                return problem
        return None
    return _leaf_problem(value, path)


def _walk_mapping(value: dict[Any, Any], path: str, depth: int) -> str | None:
    for key, item in value.items():
        if not isinstance(key, str):
            return (
                f"{path} has the key {key!r} ({type(key).__name__}); "
                "JSON object keys are strings: convert the key to str"
            )
        problem = _text_problem(key, f"the key {key!r} of {path}")
        problem = problem or _walk(item, f"{path}[{key!r}]", depth + 1)
        if problem:
            return problem
    return None


def _leaf_problem(value: Any, path: str) -> str | None:
    """What orjson says of a value the walk does not open (datetime, UUID, enum: fine)."""
    if isinstance(value, float) and not math.isfinite(value):
        return _non_finite(value, path)
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        hint = next((h for t, h in _HINTS.items() if isinstance(value, t)), None)
        what = f"is of type {type(value).__name__}, which JSON cannot carry"
        return f"{path} {what}: {hint}" if hint else f"{path} {what} ({exc})"
    return None


def _non_finite(value: float, path: str) -> str:
    return f"{path} is {value!r}; JSON has no NaN or Infinity: send null, a string or a number"


def _text_problem(text: str, path: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        return f"{path} is not valid UTF-8 text ({exc.reason} at index {exc.start})"
    return None


def check_headers(headers: Mapping[str, Any]) -> None:
    """Raise PublishError naming the first header AMQP cannot carry (and why).

    The values a field table carries (:func:`field_value_encodable`): str,
    bytes, bool, int (64-bit signed), Decimal (32-bit unscaled), datetime,
    dict, list, None; never a float (NOTES.md). Names are text, short strings
    of at most 255 bytes.
    """
    for key, value in headers.items():
        if not _plain_header(key, value):
            break
    else:
        return  # every header plain: the common case, checked by type alone
    problem = _table_problem(headers, "")
    if problem:
        raise PublishError(f"cannot publish: {problem}")


def _plain_header(key: Any, value: Any) -> bool:
    """The common header, checked by type alone: a short ASCII name, a str/int/bool/None value."""
    if type(key) is not str or len(key) > MAX_SHORT_BYTES or not key.isascii():
        return False
    kind = type(value)
    if kind is str:
        return bool(value.isascii())
    if kind is int:
        return bool(-(2**63) <= value < 2**63)
    return kind is bool or value is None


def _table_problem(table: Mapping[Any, Any], path: str) -> str | None:
    """The first problem of a header table (``path`` "": the headers themselves)."""
    for key, value in table.items():
        name = f"{path}[{_short_repr(key)}]" if path else f"header {_short_repr(key)}"
        if not isinstance(key, str):
            return f"{name}: the name is of type {type(key).__name__}; header names are strings"
        problem = short_problem(key, f"the name of {name}")
        problem = problem or _header_value_problem(value, name)
        if problem:
            return problem
    return None


def _header_value_problem(value: Any, path: str) -> str | None:
    if isinstance(value, dict):
        return _table_problem(value, path)
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _header_value_problem(item, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(value, float):
        return (
            f"{path} is a float ({value!r}); AMQP headers here cannot carry floats: "
            "send a string or an integer (e.g. milliseconds)"
        )
    if isinstance(value, str):
        problem = _text_problem(value, path)
        if problem:
            return problem
    if not field_value_encodable(value):
        return (
            f"{path} = {_short_repr(value)} ({type(value).__name__}) cannot travel in an AMQP "
            "header: use str, int (64-bit), bool, bytes, datetime, a list or a dict of those"
        )
    return None


def field_value_encodable(value: Any) -> bool:
    """Whether ``value`` can be a value of an AMQP field table (a header), as encoded.

    The rules of the table encoder the RabbitMQ transport writes with
    (``tests/unit/test_field_values.py`` compares the two):
    strings (UTF-8), bytes, bool, None; ints of 64 bits, signed; a Decimal
    whose unscaled value fits 32 bits signed, with at most 255 decimals;
    a datetime at or after the epoch; a dict of such values under short-string
    names (text or bytes); a list of such values. Nothing else: no float, no
    tuple, no other mapping.
    """
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, bytes | bool) or value is None:
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, Decimal):
        return _decimal_encodable(value)
    if isinstance(value, datetime):
        return _timestamp_encodable(value)
    if isinstance(value, dict):
        return all(_short_name(key) and field_value_encodable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(field_value_encodable(item) for item in value)
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _short_name(key: Any) -> bool:
    """A field name: text or bytes of at most 255 bytes once encoded."""
    if isinstance(key, str):
        return _utf8(key) and len(key.encode()) <= MAX_SHORT_BYTES
    return isinstance(key, bytes) and len(key) <= MAX_SHORT_BYTES


def _decimal_encodable(value: Decimal) -> bool:
    """An AMQP decimal: a scale octet (0..255) and a 32-bit signed unscaled value."""
    try:
        normal = value.normalize()
        exponent = normal.as_tuple().exponent
        if not isinstance(exponent, int):  # NaN, Infinity
            return False
        if exponent < 0:
            scale = -exponent
            unscaled = int(normal * (Decimal(10) ** scale))
        else:
            scale, unscaled = 0, int(normal)
    except (ArithmeticError, ValueError):
        return False
    return scale <= 255 and -(2**31) <= unscaled < 2**31


def _timestamp_encodable(value: datetime) -> bool:
    """An AMQP timestamp: whole seconds since the epoch, 64-bit unsigned."""
    try:
        seconds = calendar.timegm(value.utctimetuple())
    except (OverflowError, ValueError):
        return False
    return 0 <= seconds < 2**64


def short_problem(value: Any, what: str) -> str | None:
    """Why ``value`` cannot be an AMQP short string (``message_id``, a header name...)."""
    if not isinstance(value, str):
        return f"{what} must be a string, not {type(value).__name__}"
    problem = _text_problem(value, what)
    if problem:
        return problem
    size = len(value.encode())
    if size > MAX_SHORT_BYTES:
        return f"{what} is {size} bytes long; AMQP allows at most {MAX_SHORT_BYTES}"
    return None


def check_short(value: Any, what: str) -> None:
    """Raise PublishError when ``value`` cannot be the AMQP short string ``what``."""
    problem = short_problem(value, what)
    if problem:
        raise PublishError(f"cannot publish: {problem}")


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
