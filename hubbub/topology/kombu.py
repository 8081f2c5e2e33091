"""A hub's topology as kombu entities, for apps that let kombu own declaration.

Built from :func:`hubbub.topology.layout.layout`, the single description of
what a hub needs on the broker, so declaring these gives the broker exactly
what ``hubbub topology apply`` gives it (same names, types, arguments and
bindings; ``hubbub topology plan`` then reports no changes), and either may
run after the other without a PRECONDITION_FAILED. kombu binds a queue with
``Queue(bindings=[binding(...)])`` and an exchange to an exchange with
``Exchange.bind_to``: the delay ladder needs both.

Unlike ``apply``, :func:`declare` only adds: it never removes bindings the
topology no longer names (that needs the management API; use
``hubbub topology apply``).

Needs the ``kombu`` extra: ``pip install hubbub[kombu]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

try:
    import amqp.exceptions as amqp_errors
    from kombu.connection import Connection
    from kombu.entity import Exchange, Queue, binding
    from kombu.exceptions import OperationalError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("hubbub.topology.kombu needs kombu: pip install 'hubbub[kombu]'") from exc

from hubbub.connection import connect_failure
from hubbub.errors import DeclarationError
from hubbub.topology.declare import explain
from hubbub.topology.layout import Exchange as HubExchange
from hubbub.topology.layout import Layout, layout
from hubbub.topology.layout import Queue as HubQueue
from hubbub.topology.model import Topology


@dataclass(frozen=True, slots=True)
class ExchangeBinding:
    """``source`` forwards messages matching ``routing_key`` to the ``destination`` exchange."""

    destination: Exchange
    source: Exchange
    routing_key: str

    def bind(self, channel: Any) -> None:
        self.destination.bind(channel).bind_to(self.source.name, routing_key=self.routing_key)

    def __str__(self) -> str:
        return f"{self.source.name} -> exchange {self.destination.name} [{self.routing_key}]"


@dataclass(frozen=True, slots=True)
class KombuTopology:
    """Every kombu entity of one hub, in declaration order (unbound: no I/O)."""

    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    exchange_bindings: tuple[ExchangeBinding, ...]


def kombu_topology(topology: Topology | Layout) -> KombuTopology:
    """The kombu ``Exchange``/``Queue``/``binding`` declarations of a topology (pure)."""
    wanted = topology if isinstance(topology, Layout) else layout(topology)
    exchanges = {e.name: _exchange(e) for e in wanted.exchanges}
    queue_bindings: dict[str, list[Any]] = {q.name: [] for q in wanted.queues}
    exchange_bindings = []
    for b in wanted.bindings:
        if b.destination_type == "exchange":
            exchange_bindings.append(
                ExchangeBinding(exchanges[b.destination], exchanges[b.source], b.routing_key)
            )
        else:
            queue_bindings[b.destination].append(
                binding(exchanges[b.source], routing_key=b.routing_key)
            )
    queues = tuple(_queue(q, queue_bindings[q.name]) for q in wanted.queues)
    return KombuTopology(tuple(exchanges.values()), queues, tuple(exchange_bindings))


def declare(connection: Connection, topology: Topology | Layout) -> KombuTopology:
    """Declare ``topology`` with kombu on ``connection``; returns what it declared.

    Idempotent. Raises DeclarationError naming the object the broker
    refused (e.g. a queue that exists with other arguments) and
    BrokerConnectionError when the broker cannot be reached.
    """
    entities = kombu_topology(topology)
    try:
        connection.ensure_connection(max_retries=0)
        channel = connection.channel()
    except (OperationalError, amqp_errors.AMQPError, OSError) as exc:
        url = connection.as_uri(include_password=True)
        raise connect_failure(exc.__cause__ or exc, [url]) from exc
    try:
        for exchange in entities.exchanges:
            _guard(exchange.bind(channel).declare, f"exchange {exchange.name!r}")
        for queue in entities.queues:
            _guard(queue.bind(channel).declare, f"queue {queue.name!r}")
        for eb in entities.exchange_bindings:
            _guard(partial(eb.bind, channel), f"binding {eb}")
    finally:
        channel.close()
    return entities


def _exchange(e: HubExchange) -> Exchange:
    return Exchange(e.name, type=e.type, durable=True, auto_delete=False, arguments=e.args)


def _queue(q: HubQueue, bindings: list[Any]) -> Queue:
    return Queue(
        q.name,
        bindings=bindings,
        durable=True,
        exclusive=False,
        auto_delete=False,
        queue_arguments=q.args,
    )


def _guard(step: Callable[[], Any], what: str) -> None:
    try:
        step()
    except amqp_errors.ChannelError as exc:
        code = getattr(exc, "reply_code", 0) or 0
        text = getattr(exc, "reply_text", "") or str(exc)
        raise DeclarationError(explain(what, code, text)) from exc
    except (amqp_errors.AMQPError, OperationalError, OSError) as exc:
        raise DeclarationError(f"cannot declare {what}: {type(exc).__name__}: {exc}") from exc


__all__ = ["ExchangeBinding", "KombuTopology", "declare", "kombu_topology"]
