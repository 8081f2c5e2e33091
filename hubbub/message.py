"""hubbub's own AMQP message: what every part of hubbub speaks, whatever the client.

A :class:`Message` is a body with the AMQP basic properties, headers among
them, in hubbub's types: no client library's property class crosses this
line. A transport (:mod:`hubbub.transport`) converts at its edge, so the
envelope, the consumer's handling, the admin tools and the test hubs work
on the same value whichever broker client carries it, and a second
transport is a conversion away, not a rewrite.

Three names, three moments of one message:

- :class:`Message`: the body and its properties (what is published, stored,
  delivered, browsed);
- :class:`Outbound`: a message on its way, with where it goes (exchange,
  routing key, ``mandatory``);
- :class:`Delivery`: a message a consumer received, with what the broker said
  about it (delivery tag, the exchange and routing key it was published with,
  ``redelivered``).

All three are frozen: change one with :func:`dataclasses.replace` (or
:meth:`Message.with_headers`), never in place, so a message handed to a
middleware or a transport cannot change under another holder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from hubbub.fastinit import builder

#: ``delivery_mode`` of a message the broker writes to disk.
PERSISTENT = 2


@dataclass(frozen=True, slots=True)
class Message:
    """A body and its AMQP basic properties (the properties in the protocol's order).

    ``headers`` is the properties' field table; None and an empty mapping
    mean the same (no headers). ``timestamp`` is whole seconds since the
    epoch, as AMQP carries it.
    """

    body: bytes
    content_type: str | None = None
    content_encoding: str | None = None
    headers: Mapping[str, Any] | None = None
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    cluster_id: str | None = None

    def with_headers(self, headers: Mapping[str, Any] | None) -> Message:
        """This message with ``headers`` in place of its own (None or empty: none)."""
        return replace(self, headers=headers or None)

    def republished(self, headers: Mapping[str, Any] | None) -> Message:
        """The copy hubbub republishes of this message (a retry, a dead-letter, a replay).

        Persistent, with ``headers`` in place of its own; ``expiration`` is
        dropped (a copy must not expire in a delay queue), ``user_id`` too (the
        broker checks it against the publishing connection's user), and
        ``cluster_id`` (deprecated in AMQP 0-9-1). The one rule for every copy.
        """
        return replace(
            self,
            headers=headers or None,
            delivery_mode=PERSISTENT,
            expiration=None,
            user_id=None,
            cluster_id=None,
        )

    @property
    def persistent(self) -> bool:
        return self.delivery_mode == PERSISTENT


#: The AMQP basic property names, in wire order (``Message``'s fields after ``body``).
PROPERTY_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Message))[1:]


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message on its way: published to ``exchange`` with ``routing_key``.

    ``mandatory`` asks the broker to return the message when no queue is bound
    for it (hubbub's hub exchange has an alternate exchange instead, so only
    copies aimed at one queue use it).
    """

    exchange: str
    routing_key: str
    message: Message
    mandatory: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message a consumer received, untouched, with the broker's delivery facts."""

    tag: int
    exchange: str
    routing_key: str
    redelivered: bool
    message: Message


#: Positional, cheap constructors for the per-message path (:mod:`hubbub.fastinit`):
#: ``new_message(body, *properties_in_wire_order)``, ``new_delivery(tag, exchange,
#: routing_key, redelivered, message)``.
new_message = builder(Message)
new_delivery = builder(Delivery)
new_outbound = builder(Outbound)

__all__ = [
    "PERSISTENT",
    "PROPERTY_NAMES",
    "Delivery",
    "Message",
    "Outbound",
    "new_delivery",
    "new_message",
    "new_outbound",
]
