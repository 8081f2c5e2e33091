"""Declare a layout on the broker: the one step of the topology that does I/O.

Declaring is idempotent: exchanges, queues and bindings that already exist
as wanted are left alone. A conflicting queue or exchange stops the apply
with a message naming it, the difference and the fix, never a raw
PRECONDITION_FAILED.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import partial

from hubbub.errors import DeclarationError
from hubbub.topology.layout import Binding, Exchange, Layout, Queue
from hubbub.topology.plan import IMPLIED_ARGUMENTS, Change
from hubbub.transport.errors import ConnectionLostError, RefusedError
from hubbub.transport.session import BrokerSession


def declare(session: BrokerSession, layout: Layout) -> None:
    """Declare every exchange, queue and binding of ``layout``."""
    for exchange in layout.exchanges:
        _guard(partial(_exchange, session, exchange), f"exchange {exchange.name!r}")
    for queue in layout.queues:
        _guard(partial(_queue, session, queue), f"queue {queue.name!r}")
    for binding in layout.bindings:
        _guard(partial(_bind, session, binding), f"binding {binding}")


def remove_bindings(session: BrokerSession, changes: Iterable[Change]) -> int:
    """Unbind the bindings a plan marked for removal; returns how many."""
    removed = 0
    for change in changes:
        b = change.binding
        if change.action != "remove" or b is None:
            continue
        if b.destination_type == "exchange":
            session.unbind_exchange(b.destination, b.source, b.routing_key)
        else:
            session.unbind_queue(b.destination, b.source, b.routing_key)
        removed += 1
    return removed


def _exchange(session: BrokerSession, e: Exchange) -> None:
    session.declare_exchange(e.name, e.type, arguments=e.args)


def _queue(session: BrokerSession, q: Queue) -> None:
    session.declare_queue(q.name, arguments=q.args)


def _bind(session: BrokerSession, b: Binding) -> None:
    if b.destination_type == "exchange":
        session.bind_exchange(b.destination, b.source, b.routing_key)
    else:
        session.bind_queue(b.destination, b.source, b.routing_key)


def _guard(step: Callable[[], None], what: str) -> None:
    try:
        step()
    except RefusedError as exc:
        raise DeclarationError(explain(what, exc.code, exc.reply)) from exc
    except ConnectionLostError as exc:
        raise DeclarationError(f"cannot declare {what}: {exc.detail}") from exc


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
