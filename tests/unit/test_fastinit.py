"""Cheap constructors build the same frozen objects as ``__init__``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import pytest

from hubbub.consumers.handling import Outcome, _outcome
from hubbub.envelope import Event, _event
from hubbub.fastinit import builder
from hubbub.message import Delivery, Message, new_delivery


@pytest.mark.parametrize("cls", [Event, Delivery, Outcome])
def test_built_objects_equal_initialised_ones_and_stay_frozen(cls):
    values = [f"value-{f.name}" for f in fields(cls)]
    built = builder(cls, skips_post_init=True)(*values)
    assert built == cls(*values)
    assert repr(built) == repr(cls(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.__setattr__(fields(cls)[0].name, "changed")


def test_the_hot_path_constructors_follow_the_field_order():
    one = ("t",)
    assert _event(
        "t", {"a": 1}, "id", 2, {}, None, None, None, None, None, "s", True, one, one
    ) == Event("t", {"a": 1}, "id", 2, {}, None, None, None, None, None, "s", True)


def test_a_class_with_post_init_needs_the_promise_that_callers_fill_it_in():
    with pytest.raises(TypeError, match="no __post_init__"):
        builder(Event)
    message = Message(b"{}")
    assert new_delivery(1, "x", "k", False, message) == Delivery(1, "x", "k", False, message)


def test_the_call_sites_order_matches_the_fields_by_name():
    """The positional calls on the hot path, against keyword construction:
    reordering a class's fields (two of the same type swapped) fails here."""
    assert _event(
        "t",
        {"a": 1},
        "id",
        2,
        {"h": 1},
        "corr",
        "cause",
        None,
        1.5,
        None,
        "sub",
        True,
        ("t", "u"),
        ("u",),
    ) == Event(
        topic="t",
        data={"a": 1},
        id="id",
        attempt=2,
        headers={"h": 1},
        correlation_id="corr",
        causation_id="cause",
        timestamp=None,
        delay=1.5,
        due=None,
        subscriber="sub",
        redelivered=True,
        topics=("t", "u"),
        matched=("u",),
    )
    message = Message(b"{}")
    assert new_delivery(7, "ex", "key", True, message) == Delivery(
        tag=7, exchange="ex", routing_key="key", redelivered=True, message=message
    )
    assert _outcome("ack", 0.0, None, "t.x", "id-1", 3, "") == Outcome(
        "ack", topic="t.x", event_id="id-1", attempt=3
    )


def test_a_missing_argument_is_an_error():
    with pytest.raises(TypeError):
        builder(Delivery)(1, "x")


def test_classes_it_cannot_build_faithfully_are_refused():
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class Computed:
        a: int

        def __post_init__(self) -> None: ...

    for cls in (NoSlots, Computed):
        with pytest.raises(TypeError):
            builder(cls)
