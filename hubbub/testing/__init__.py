"""Public helpers for testing apps built on hubbub.

- :class:`InMemoryHub`: the hub with its broker in memory (fake clock,
  deterministic handler runs), faithful to RabbitMQ's routing.
- :class:`LiveHub`: a real hub with its consumer in a thread and the same
  assertion helpers.
- :class:`FakeClock`, and the records both hubs return: :class:`Attempt`,
  :class:`DeadLetter`.
- The pytest plugin :mod:`hubbub.testing.pytest` (fixtures ``memory_hub``,
  ``hubbub_broker_url``, ``hubbub_vhost_url``, ``hubbub_live_hub``).

The names are imported on first use: the plugin, imported by every pytest run
of an app, lives in this package and must stay light (see :mod:`hubbub`).
hubbub's own test tooling (private nodes, clusters, processes, certificates)
is not here: it lives in the repository's ``tests/support`` and is not shipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbub._lazy import exports

if TYPE_CHECKING:
    from hubbub.testing.clock import FakeClock
    from hubbub.testing.live import LiveHub
    from hubbub.testing.memory import InMemoryHub
    from hubbub.testing.records import Attempt, DeadLetter

#: Where each public name lives.
_HOMES = {
    "Attempt": "hubbub.testing.records",
    "DeadLetter": "hubbub.testing.records",
    "FakeClock": "hubbub.testing.clock",
    "InMemoryHub": "hubbub.testing.memory",
    "LiveHub": "hubbub.testing.live",
}

__all__ = ["Attempt", "DeadLetter", "FakeClock", "InMemoryHub", "LiveHub"]


__getattr__, __dir__ = exports("hubbub.testing", _HOMES, globals())
