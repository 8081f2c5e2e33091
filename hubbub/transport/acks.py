"""Ack coalescing that never acks an unfinished delivery (pure).

Deliveries on a channel carry increasing tags. Completed ones at the front
of the line are acked with one ``multiple`` ack; completed ones behind an
unfinished delivery are acked one by one, so nothing waits on a slow
neighbour and nothing unfinished is ever covered by a multiple ack.
"""

from __future__ import annotations

from collections import OrderedDict


class AckTracker:
    """Deliveries of one channel that are not yet settled with the broker."""

    def __init__(self) -> None:
        self._open: OrderedDict[int, bool] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, tag: int) -> None:
        """A delivery arrived."""
        self._open[tag] = False

    def forget(self, tag: int) -> None:
        """The delivery was settled another way (nack, reject)."""
        self._open.pop(tag, None)

    def complete(self, tags: list[int]) -> list[tuple[int, bool]]:
        """Mark ``tags`` done; returns the ``(tag, multiple)`` acks to send now."""
        for tag in tags:
            if tag in self._open:
                self._open[tag] = True
        acks: list[tuple[int, bool]] = []
        last, count = 0, 0
        while self._open:
            tag, done = next(iter(self._open.items()))
            if not done:
                break
            self._open.popitem(last=False)
            last, count = tag, count + 1
        if count:
            acks.append((last, count > 1))
        for tag in tags:
            if self._open.get(tag):
                del self._open[tag]
                acks.append((tag, False))
        return acks
