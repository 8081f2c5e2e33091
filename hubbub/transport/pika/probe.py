"""Check at start that a consumer may publish its retry and dead-letter copies.

A consumer whose user may not write to the delay ladder (or the dead-letter
exchange) would otherwise start "healthy" and find out on the first failing
event, whose copy the broker refuses. Checked on RabbitMQ 3.10.8:
``basic.publish`` is checked for write permission (403 ``ACCESS_REFUSED``)
and for the exchange's existence (404) *before* the message's properties,
and an ``expiration`` that is not a number is then refused with 406
``PRECONDITION_FAILED``. So a probe with such an expiration tells the three
cases apart and is never routed: not even to the hub's alternate exchange,
which every hub exchange has (an unmatched routing key alone would park the
probe in ``<hub>.unrouted``). A broker that checked the properties first
would answer 406 everywhere: the check would then pass, never fail wrongly,
and a refused copy would still stop the consumer.
"""

from __future__ import annotations

from collections.abc import Sequence

import pika
import pika.exceptions as pe

from hubbub.transport.errors import CopyTargetError
from hubbub.transport.pika.params import connect

#: Routing key of a probe (it is refused before any routing).
PROBE_KEY = "hubbub.permission-probe"
#: Not a number of milliseconds: the broker refuses the probe once permitted.
_BAD_EXPIRATION = "hubbub-permission-probe"
_REFUSED, _MISSING = 403, 404


def check_copy_targets(urls: Sequence[str], exchanges: Sequence[str], *, name: str) -> None:
    """Raise :class:`CopyTargetError` unless each of ``exchanges`` exists and is writable."""
    connection = connect(urls, name=name)
    try:
        codes = {exchange: _probe(connection, exchange) for exchange in exchanges}
    finally:
        if connection.is_open:
            connection.close()
    missing = [x for x, code in codes.items() if code == _MISSING]
    refused = [x for x, code in codes.items() if code == _REFUSED]
    if missing:
        raise CopyTargetError(
            f"exchange {missing[0]!r} does not exist", missing=missing, refused=refused
        )
    if refused:
        raise CopyTargetError(
            f"may not write to exchange {refused[0]!r} (ACCESS_REFUSED)",
            missing=missing,
            refused=refused,
        )


def _probe(connection: pika.BlockingConnection, exchange: str) -> int:
    """The broker's reply code to a probe publish to ``exchange`` (0: it was accepted)."""
    channel = connection.channel()
    channel.confirm_delivery()
    try:
        channel.basic_publish(
            exchange, PROBE_KEY, b"", pika.BasicProperties(expiration=_BAD_EXPIRATION)
        )
    except pe.ChannelClosedByBroker as exc:
        return int(exc.reply_code)
    channel.close()
    return 0
