"""Routing-key patterns: validation and RabbitMQ's exact topic matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.topology.patterns import (
    MAX_KEY_BYTES,
    covers,
    matches,
    pattern_problems,
    topic_problems,
)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("#", "", True),
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("*", "a", True),
        ("*", "a.b", False),
        ("*", "", False),  # the broker splits "" into no words at all
        ("*.#", "", False),
        ("*.#", ".", True),  # "." is two empty words
        ("a.#", "a.", True),
        ("a.#", "a", True),
        ("a.#", "a.b", True),
        ("a.#", "a.b.c", True),
        ("a.#", "b.a", False),
        ("a.*", "a", False),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*.c", "a.b.b.c", False),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("#.c", "a.c.d", False),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.b.c", True),
        ("a.#.c", "a.b.x.c", True),
        ("a.#.c", "a.b.x.d", False),
        ("#.#", "a", True),
        ("*.*", "a", False),
        ("user.signed_up", "user.signed_up", True),
        ("user.signed_up", "user.signed_upx", False),
        ("user.first_action.*", "user.first_action.uploaded_photo", True),
        ("billing.#", "billing", True),
        ("billing.#", "billing.invoice.paid", True),
    ],
)
def test_matches_has_rabbitmq_topic_semantics(pattern, key, expected):
    assert matches(pattern, key) is expected


words = st.sampled_from(["a", "b", "c"])
pattern_words = st.sampled_from(["a", "b", "*", "#"])


@given(st.lists(pattern_words, min_size=1, max_size=5), st.lists(words, min_size=0, max_size=6))
def test_matches_agrees_with_a_word_level_oracle(pattern_parts, key_parts):
    assert matches(".".join(pattern_parts), ".".join(key_parts)) is _oracle(
        pattern_parts, key_parts
    )


def _oracle(pattern: list[str], key: list[str]) -> bool:
    """Dynamic programming over words: a second, independent implementation."""
    # can[i][j]: pattern[i:] matches key[j:]
    can = [[False] * (len(key) + 1) for _ in range(len(pattern) + 1)]
    can[len(pattern)][len(key)] = True
    for i in range(len(pattern) - 1, -1, -1):
        for j in range(len(key), -1, -1):
            word = pattern[i]
            if word == "#":
                can[i][j] = can[i + 1][j] or (j < len(key) and can[i][j + 1])
            else:
                can[i][j] = j < len(key) and word in ("*", key[j]) and can[i + 1][j + 1]
    return can[0][0]


@pytest.mark.parametrize("pattern", ["user.*", "#", "a.#.c", "user.signed_up", "a-b_c.d"])
def test_valid_patterns_have_no_problems(pattern):
    assert pattern_problems(pattern) == []


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty"),
        ("user.*x", "mixes a wildcard"),
        ("user#", "mixes a wildcard"),
        ("a..b", "empty word"),
        (".a", "empty word"),
        ("a.", "empty word"),
        ("a b", "white space"),
        ("a." * 127 + "bb", f"over {MAX_KEY_BYTES} bytes"),
        ("é" * 128, f"over {MAX_KEY_BYTES} bytes"),  # 256 bytes in 128 characters
    ],
)
def test_invalid_patterns_say_why(pattern, fragment):
    problems = pattern_problems(pattern)
    assert any(fragment in p for p in problems), problems


def test_topics_may_not_hold_wildcards():
    assert topic_problems("user.signed_up") == []
    assert any("wildcard" in p for p in topic_problems("user.*"))
    assert any("wildcard" in p for p in topic_problems("#"))
    assert topic_problems("") == ["topic is empty"]


def test_a_key_of_exactly_255_bytes_is_allowed():
    key = "a" * MAX_KEY_BYTES
    assert topic_problems(key) == []
    assert topic_problems(key + "a") != []


@pytest.mark.parametrize(
    ("wide", "narrow", "covered"),
    [
        ("user.#", "user.*", True),
        ("user.#", "user.signed_up", True),
        ("user.*", "user.#", False),  # user.a.b, and user itself
        ("#", "anything.#", True),
        ("*.#", "#.*", True),  # both: one word or more
        ("#.*", "*.#", True),
        ("*.#", "#", False),  # the empty key
        ("a.*.c", "a.b.c", True),
        ("a.b.c", "a.*.c", False),
        ("a.#.c", "a.*.*.c", True),
        ("a.#.c", "a.#.b.c", True),
        ("a.*.c", "a.#.c", False),
        ("billing.#", "user.*", False),
        ("user.*", "user.*", True),
    ],
)
def test_a_pattern_covers_another_when_it_matches_every_key_the_other_does(wide, narrow, covered):
    assert covers(wide, narrow) is covered


@given(
    st.lists(pattern_words, min_size=1, max_size=4),
    st.lists(pattern_words, min_size=1, max_size=4),
    st.lists(words, min_size=0, max_size=6),
)
def test_covers_agrees_with_matching_on_every_key(wide, narrow, key):
    """Covered: every key the narrow pattern matches, the wide one matches too."""
    wide_text, narrow_text, key_text = ".".join(wide), ".".join(narrow), ".".join(key)
    if covers(wide_text, narrow_text) and matches(narrow_text, key_text):
        assert matches(wide_text, key_text)


@given(
    st.lists(pattern_words, min_size=1, max_size=3), st.lists(pattern_words, min_size=1, max_size=3)
)
def test_covers_is_exact_on_short_patterns(wide, narrow):
    """Not covered: some key (of words a, b, c, up to 7) matches the narrow pattern only."""
    import itertools

    wide_text, narrow_text = ".".join(wide), ".".join(narrow)
    keys = (".".join(k) for n in range(8) for k in itertools.product(["a", "b", "c"], repeat=n))
    missed = any(matches(narrow_text, k) and not matches(wide_text, k) for k in keys)
    assert covers(wide_text, narrow_text) is not missed
