"""Hooks a consumer calls as events move through it (metrics, tests).

The base class does nothing; :mod:`hubbub.consumers.metrics` counts with
prometheus-client. Called from handler threads and the I/O thread alike:
implementations must be thread-safe and fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubbub.consumers.handling import Outcome


class Observer:
    def started(self, subscriber: str) -> None:
        """A delivery arrived for ``subscriber`` (it is now in flight)."""

    def finished(self, subscriber: str, outcome: Outcome, seconds: float) -> None:
        """A handler run ended with ``outcome`` after ``seconds``.

        Called once the outcome is carried out: a ``retry`` or ``dead-letter``
        outcome means its copy was confirmed; when the copy failed the
        outcome is ``release`` (the event goes back to its queue). Called on
        the handler thread, or for copies on the publisher's I/O thread (the
        handler thread does not wait for the confirm), or for a handler past
        its time limit on the watchdog's thread.
        """

    def skipped(self, subscriber: str, topic: str) -> None:
        """An idempotent subscriber's inbox skipped an event it had handled (it is acked)."""

    def settled(self, subscriber: str) -> None:
        """A delivery left flight (acked, requeued or void)."""

    def connected(self) -> None:
        """The consumer's connection opened (the first time, or again after a loss)."""

    def disconnected(self) -> None:
        """The connection closed; events in flight on it will be redelivered."""
