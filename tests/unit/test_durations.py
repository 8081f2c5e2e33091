"""Durations as written in topology files and on the command line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hubbub.topology.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("90s", 90.0),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("3d", 259200.0),
        (" 5 m ", 300.0),
        (0, 0.0),
        (7, 7.0),
        (2.5, 2.5),
        (timedelta(minutes=2), 120.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad",
    [
        "soon",
        "-5s",
        "5 weeks",
        "1e3",
        "",
        "m",
        True,
        -1,
        float("nan"),
        float("inf"),
        timedelta(seconds=-1),
    ],
)
def test_parse_duration_refuses_nonsense(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(86400, "1d"), (7200, "2h"), (90, "90s"), (600, "10m"), (1.5, "1.5s"), (0, "0s")],
)
def test_format_duration_is_exact_and_round_trips(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
