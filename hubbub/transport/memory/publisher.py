"""Confirmed publishing into a :class:`~hubbub.transport.memory.broker.MemoryBroker`.

The in-memory :class:`~hubbub.transport.base.PublisherTransport`: a send
routes each message at once, so its *confirm* is the send itself. Every
:class:`~hubbub.transport.base.Pending` is settled exactly once before
:meth:`MemoryPublisherTransport.send_many` returns: confirmed, or failed as
RabbitMQ fails it (an exchange that does not exist; a ``mandatory`` message
no queue is bound for). A withdrawn (cancelled) message is not sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.errors import PublishError
from hubbub.transport.base import Pending
from hubbub.transport.errors import UnroutableError
from hubbub.transport.memory.broker import MemoryBroker


class MemoryPublisherTransport:
    """A publisher transport on ``broker``; safe to share between threads."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self._live = False

    def send_many(self, pending: Sequence[Pending]) -> None:
        self._live = True
        for message in pending:
            if message.claim():
                message.settle(self._route(message))

    def _route(self, message: Pending) -> PublishError | None:
        """Route one message: None once stored (its confirm), else why it failed."""
        outbound = message.outbound
        try:
            queues = self.broker.publish(outbound)
        except PublishError as exc:
            return exc
        if outbound.mandatory and not queues:
            return UnroutableError(
                f"no queue is bound for routing key {outbound.routing_key!r} on "
                f"exchange {outbound.exchange!r} (NO_ROUTE)"
            )
        return None

    def connect(self) -> None:
        self._live = True

    @property
    def live(self) -> bool:
        return self._live

    @property
    def blocked(self) -> str | None:
        """Never: memory raises no resource alarm."""
        return None

    def close(self, timeout: float = 10.0) -> None:
        """Nothing is ever in flight: close at once (the next send reconnects)."""
        self._live = False
