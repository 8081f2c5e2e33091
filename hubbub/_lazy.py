"""Public names of a package imported on first use (PEP 562), for packages that must import light.

``hubbub`` and ``hubbub.testing`` are imported by every pytest run of an app
(the plugin entry point) and must not pay for the broker client, pydantic and
the hub machinery unless a test uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def exports(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each of ``homes`` (name -> module)
    is imported on first use and kept in ``namespace`` (later lookups skip the hook)."""

    def attribute(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(home), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *homes})

    return attribute, names
