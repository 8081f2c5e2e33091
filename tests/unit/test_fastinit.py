"""Cheap constructors build the same frozen objects as ``__init__``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import pytest

from hubbub.consumers.handling import Delivery, Outcome, new_delivery
from hubbub.envelope import Event, _event
from hubbub.fastinit import builder


@pytest.mark.parametrize("cls", [Event, Delivery, Outcome])
def test_built_objects_equal_initialised_ones_and_stay_frozen(cls):
    values = [f"value-{f.name}" for f in fields(cls)]
    built = builder(cls)(*values)
    assert built == cls(*values)
    assert repr(built) == repr(cls(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.__setattr__(fields(cls)[0].name, "changed")


def test_the_hot_path_constructors_follow_the_field_order():
    assert _event("t", {"a": 1}, "id", 2, {}, None, None, None, None, None, "s", True) == Event(
        "t", {"a": 1}, "id", 2, {}, None, None, None, None, None, "s", True
    )
    assert new_delivery(1, "x", "k", False, None, b"{}") == Delivery(
        1, "x", "k", False, None, b"{}"
    )  # type: ignore[arg-type]


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
