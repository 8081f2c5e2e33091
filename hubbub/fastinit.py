"""Construct frozen slots dataclasses cheaply on the per-event path.

A frozen dataclass's ``__init__`` assigns every field through
``object.__setattr__`` (to get past its own ``__setattr__``, which refuses):
about 150 ns a field. Every delivery builds three such objects (the
delivery, the event, the outcome), which made up a tenth of consuming's
cost (``bench/README.md``). :func:`builder` returns a positional constructor
that sets the slots through their descriptors instead: the same object,
equal to one built by ``__init__``, 2.5x cheaper. Only for classes without
``__post_init__`` or field defaults to compute: it sets what it is given
(``skips_post_init=True``: the caller always passes what ``__post_init__``
would have filled in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def builder(cls: type[T], *, skips_post_init: bool = False) -> Callable[..., T]:
    """``build(*values)`` for frozen slots dataclass ``cls``, fields in declaration order."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    post_init = hasattr(cls, "__post_init__") and not skips_post_init
    if getattr(cls, "__slots__", None) is None or post_init:
        raise TypeError(f"{cls.__name__}: builder() needs slots and no __post_init__")
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    scope.update({f"set_{name}": getattr(cls, name).__set__ for name in names})
    arguments = ", ".join(f"f_{name}" for name in names)
    lines = [f"def build({arguments}):", "    obj = new(cls)"]
    lines += [f"    set_{name}(obj, f_{name})" for name in names]
    lines.append("    return obj")
    exec("\n".join(lines), scope)  # noqa: S102 - generated from field names, as dataclasses does
    build: Callable[..., T] = scope["build"]
    build.__qualname__ = f"build_{cls.__name__}"
    return build
