"""What ``hubbub topology destroy`` removes, and when it must refuse (pure).

Destroying a hub deletes every exchange and queue that carries one of its
names (:meth:`~hubbub.topology.names.HubNames.owns`): the hub, its
unrouted, dead-letter and delivery exchanges, every subscriber's queue and
dead-letter queue (those the file no longer names too) and the delay
ladder. Deleting a queue deletes the events in it, so a queue that holds
any (ready or unacked: a delayed event waiting in the ladder, a failed one
in a dead-letter queue) stops the whole destroy before anything is deleted,
unless the operator forces it.

The order matters: the hub exchange goes first, so publishers get a clear
"no such exchange" error instead of feeding queues about to vanish; then
the queues; then the other exchanges.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.errors import HubbubError
from hubbub.topology.names import HubNames
from hubbub.topology.plan import Change, Observed, summarize


class DestroyRefusedError(HubbubError):
    """``topology destroy`` would delete events (or found new ones while deleting)."""


@dataclass(frozen=True, slots=True)
class Teardown:
    """The objects of one hub to delete, in deletion order, with each queue's messages."""

    hub: str
    #: ``(queue, messages)``: ready plus unacked.
    queues: tuple[tuple[str, int], ...]
    #: The hub exchange first (see the module docstring).
    exchanges: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """True when the broker holds nothing of the hub."""
        return not self.queues and not self.exchanges

    @property
    def holding(self) -> tuple[tuple[str, int], ...]:
        """The queues that hold events: destroying them deletes those events."""
        return tuple((q, n) for q, n in self.queues if n > 0)

    @property
    def events(self) -> int:
        """How many events a forced destroy deletes."""
        return sum(n for _, n in self.holding)

    def changes(self) -> tuple[Change, ...]:
        """The removals as plan changes (so they print as ``plan`` prints)."""
        return (
            *(Change("remove", "exchange", e) for e in self.exchanges[:1]),
            *(Change("remove", "queue", q, f"holds {n} event(s)") for q, n in self.queues),
            *(Change("remove", "exchange", e) for e in self.exchanges[1:]),
        )

    def describe(self, *, verbose: bool = False) -> str:
        """One line per removal, the delay ladder in one line unless ``verbose``."""
        if self.empty:
            return f"nothing to destroy: the broker has no exchange or queue of hub {self.hub!r}"
        held = {q for q, _ in self.holding}
        return "\n".join(summarize(self.changes(), verbose=verbose, keep=held))

    def refusal(self) -> str | None:
        """Why destroying without ``--force`` would lose events (None when it would not)."""
        if not self.holding:
            return None
        listed = ", ".join(f"{q} ({n} event(s))" for q, n in self.holding)
        return (
            f"refusing to destroy hub {self.hub!r}: {len(self.holding)} queue(s) hold "
            f"{self.events} event(s): {listed}. Drain them (hubbub dlq replay/purge, let the "
            "consumers finish) or pass --force to delete them with their events; nothing "
            "was removed"
        )


def teardown(names: HubNames, observed: Observed) -> Teardown:
    """The :class:`Teardown` of hub ``names`` from what the broker holds of it."""
    exchanges = sorted(observed.exchanges, key=lambda e: (e != names.exchange, e))
    # The record of the last apply is no event: it never stops a destroy.
    queues = tuple(
        (q, 0 if q == names.applied else observed.queues[q].messages)
        for q in sorted(observed.queues)
    )
    return Teardown(names.hub, queues, tuple(exchanges))
