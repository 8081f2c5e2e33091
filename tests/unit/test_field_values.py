"""hubbub's own check of header values accepts and refuses what pika's encoder does.

:func:`hubbub.wire.field_value_encodable` decides, before anything
is sent, whether a header value can travel; pika's ``encode_value`` is what
the RabbitMQ transport writes it with. Over a spread of values, including the
edges of every AMQP type, the two agree.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any

import pytest
from pika.data import encode_value

from hubbub.wire import field_value_encodable


class Colour(IntEnum):
    RED = 1


class Name(str, Enum):
    ALICE = "alice"


SCALARS: list[Any] = [
    "",
    "text",
    "émoji 🎉",
    "\udcff",  # a lone surrogate: not UTF-8
    b"",
    b"\x00\xff",
    True,
    False,
    None,
    0,
    -1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    Colour.RED,
    Name.ALICE,
    0.0,
    1.5,
    float("nan"),
    Decimal("0"),
    Decimal("1.25"),
    Decimal("-1.25"),
    Decimal("100"),
    Decimal("1E+3"),
    Decimal("2147483647"),
    Decimal("2147483648"),
    Decimal("-2147483648"),
    Decimal("-2147483649"),
    Decimal("21474836.48"),
    Decimal("0.000000001"),
    Decimal("1E-255"),
    Decimal("1E-256"),
    Decimal("1E+20"),
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
    datetime(2024, 5, 1, 12, 0),
    datetime(1970, 1, 1, tzinfo=timezone.utc),
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    (1, 2),
    {1, 2},
    object(),
    bytearray(b"x"),
    complex(1, 2),
]

CONTAINERS: list[Any] = [
    [],
    {},
    [1, "a", None, [True, b"x"]],
    [1, 2.5],
    [(1,)],
    {"a": 1, "b": {"c": [1, 2]}},
    {"a": {"b": 0.5}},
    {"x" * 255: 1},
    {"x" * 256: 1},
    {"é" * 128: 1},  # 256 bytes of UTF-8
    {b"raw": 1},
    {b"x" * 256: 1},
    {1: "a"},
    {"\udcff": 1},
    OrderedDict(a=1),
    [{"deep": [Decimal("1.5"), datetime(2000, 1, 1, tzinfo=timezone.utc)]}],
]


def pika_encodes(value: Any) -> bool:
    try:
        encode_value([], value)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("value", SCALARS + CONTAINERS, ids=repr)
def test_hubbubs_check_agrees_with_pikas_encoder(value: Any) -> None:
    assert field_value_encodable(value) == pika_encodes(value)


def test_the_spread_holds_values_both_sides_refuse_and_accept() -> None:
    verdicts = {pika_encodes(v) for v in SCALARS + CONTAINERS}
    assert verdicts == {True, False}
