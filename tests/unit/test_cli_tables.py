"""Plain-text output helpers of the admin commands."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hubbub.cli import tables

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_a_table_aligns_columns_and_shows_none_as_a_dash():
    text = tables.table(("NAME", "DEPTH"), [("billing", 5), ("a", None)])
    assert text.splitlines() == ["NAME     DEPTH", "billing  5", "a        -"]


def test_times_are_utc_with_their_age():
    assert tables.when(NOW - timedelta(hours=3), NOW) == "2024-05-01 09:00:00 (3h ago)"
    assert tables.when(NOW - timedelta(seconds=42), NOW).endswith("(42s ago)")
    assert tables.when(None) == "-"


def test_fixed_columns_clip_long_text_on_one_line():
    line = tables.fixed([("abcdefghij", 5), ("x\ny", 3)])
    assert line == "abcd…  x y"


def test_a_json_array_streams_item_by_item_and_parses():
    assert json.loads("\n".join(tables.json_array({"n": n} for n in range(3)))) == [
        {"n": 0},
        {"n": 1},
        {"n": 2},
    ]
    assert json.loads("\n".join(tables.json_array([]))) == []
