"""Public helpers for testing apps built on hubbub.

- :class:`InMemoryHub`: the hub with its broker in memory (fake clock,
  deterministic handler runs), faithful to RabbitMQ's routing.
- :class:`LiveHub`: a real hub with its consumer in a thread and the same
  assertion helpers.
- :class:`FakeClock`, and the records both hubs return: :class:`Attempt`,
  :class:`DeadLetter`.
- The pytest plugin :mod:`hubbub.testing.pytest` (fixtures ``memory_hub``,
  ``hubbub_broker_url``, ``hubbub_vhost_url``, ``hubbub_live_hub``).
"""

from hubbub.testing.clock import FakeClock
from hubbub.testing.live import LiveHub
from hubbub.testing.memory import InMemoryHub
from hubbub.testing.records import Attempt, DeadLetter

__all__ = ["Attempt", "DeadLetter", "FakeClock", "InMemoryHub", "LiveHub"]
