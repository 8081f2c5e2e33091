"""Declare a layout on the broker: the one step of the topology that does I/O.

Declaring is idempotent: exchanges, queues and bindings that already exist
as wanted are left alone. A conflicting queue or exchange stops the apply
with a message naming it, the difference and the fix, never a raw
PRECONDITION_FAILED.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pika
import pika.exceptions as pe
from pika.adapters.blocking_connection import BlockingChannel

from hubbub.errors import DeclarationError
from hubbub.topology.layout import Binding, Exchange, Layout, Queue
from hubbub.topology.plan import IMPLIED_ARGUMENTS, Change


def declare(connection: pika.BlockingConnection, layout: Layout) -> None:
    """Declare every exchange, queue and binding of ``layout``."""
    channel = connection.channel()
    try:
        for exchange in layout.exchanges:
            _guard(lambda e=exchange: _exchange(channel, e), f"exchange {exchange.name!r}")
        for queue in layout.queues:
            _guard(lambda q=queue: _queue(channel, q), f"queue {queue.name!r}")
        for binding in layout.bindings:
            _guard(lambda b=binding: _bind(channel, b), f"binding {binding}")
    finally:
        if channel.is_open:
            channel.close()


def remove_bindings(connection: pika.BlockingConnection, changes: Iterable[Change]) -> int:
    """Unbind the bindings a plan marked for removal; returns how many."""
    channel = connection.channel()
    removed = 0
    try:
        for change in changes:
            b = change.binding
            if change.action != "remove" or b is None:
                continue
            if b.destination_type == "exchange":
                channel.exchange_unbind(b.destination, b.source, b.routing_key)
            else:
                channel.queue_unbind(b.destination, b.source, b.routing_key)
            removed += 1
    finally:
        if channel.is_open:
            channel.close()
    return removed


def _exchange(channel: BlockingChannel, e: Exchange) -> None:
    channel.exchange_declare(e.name, e.type, durable=True, arguments=e.args)


def _queue(channel: BlockingChannel, q: Queue) -> None:
    channel.queue_declare(q.name, durable=True, arguments=q.args)


def _bind(channel: BlockingChannel, b: Binding) -> None:
    if b.destination_type == "exchange":
        channel.exchange_bind(b.destination, b.source, b.routing_key)
    else:
        channel.queue_bind(b.destination, b.source, b.routing_key)


def _guard(step: object, what: str) -> None:
    try:
        step()  # type: ignore[operator]
    except pe.ChannelClosedByBroker as exc:
        raise DeclarationError(explain(what, exc.reply_code, exc.reply_text)) from exc
    except pe.AMQPError as exc:
        raise DeclarationError(f"cannot declare {what}: {type(exc).__name__}: {exc}") from exc


#: The broker cuts reply texts at 255 bytes, so with long names the current
#: value (or even the received one) may be missing.
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)'"
    r"(?:.*?received (?P<got>.*?) but current is (?P<cur>.*)$)?"
)


def explain(what: str, code: int, text: str) -> str:
    """One actionable sentence for a broker refusal while declaring ``what``."""
    match = _INEQUIVALENT.search(text)
    if code == 406 and match:
        have = (
            f"{match['arg']} {_plain(match['cur'], match['arg'])}"
            if match["cur"]
            else f"a different {match['arg']}"
        )
        need = f", the topology needs {_plain(match['got'])}" if match["cur"] else ""
        return (
            f"{what} already exists with {have}{need}. RabbitMQ cannot change it in place: "
            "drain and delete the existing one (or give the subscriber a new name) and apply again"
        )
    if code == 403:
        return f"cannot declare {what}: the user lacks configure permission ({text})"
    return f"cannot declare {what}: broker said {code} {text}"


_VALUE = re.compile(r"the value (?P<value>'[^']*'|\S+) of type '[^']*'")


def _plain(text: str, arg: str = "") -> str:
    """A broker-quoted value as a person reads it (``the value '5' of type 'long'`` -> '5').

    A missing ``x-queue-type`` is a classic queue: RabbitMQ 3.10 says "none"
    where 4.0 says 'classic', and both read as 'classic'.
    """
    text = _VALUE.sub(lambda m: m["value"], text.strip())
    if text == "none" and arg in IMPLIED_ARGUMENTS:
        return repr(IMPLIED_ARGUMENTS[arg])
    return "not set" if text == "none" else text
