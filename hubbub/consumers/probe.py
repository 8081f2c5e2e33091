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
and a refused copy would still stop the consumer (:func:`is_refusal`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pika
import pika.exceptions as pe

from hubbub.connection import vhost_of
from hubbub.errors import HubbubError
from hubbub.topology import delay, permissions
from hubbub.topology.names import HubNames
from hubbub.transport.pika.params import connect

#: Routing key of a probe (it is refused before any routing).
PROBE_KEY = "hubbub.permission-probe"
#: Not a number of milliseconds: the broker refuses the probe once permitted.
_BAD_EXPIRATION = "hubbub-permission-probe"
_REFUSED, _MISSING = 403, 404


class CopyTargetError(HubbubError):
    """An exchange the consumer publishes copies to is missing, or its user may not write to it."""


def copy_targets(names: HubNames) -> list[str]:
    """Every exchange a consumer publishes copies to: dead-letters, delivery, ladder."""
    ladder = [names.level(level) for level in reversed(range(delay.LEVELS))]
    return [names.dead_letter_exchange, names.delivery, *ladder]


def check_copy_targets(
    urls: Sequence[str], names: HubNames, subscribers: Sequence[str], *, name: str
) -> None:
    """Raise one clear error unless every copy target exists and is writable."""
    connection = connect(urls, name=name)
    try:
        codes = {exchange: _probe(connection, exchange) for exchange in copy_targets(names)}
    finally:
        if connection.is_open:
            connection.close()
    missing = [x for x, code in codes.items() if code == _MISSING]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise CopyTargetError(
            f"exchange {missing[0]!r}{more} of hub {names.hub!r} does not exist: "
            "run 'hubbub topology apply' first"
        )
    refused = [x for x, code in codes.items() if code == _REFUSED]
    if refused:
        raise CopyTargetError(refusal(urls[0], names, subscribers, refused))


def refusal(url: str, names: HubNames, subscribers: Sequence[str], exchanges: list[str]) -> str:
    """One line: which exchanges the user may not write to, and the grant that fixes it."""
    user = pika.URLParameters(url).credentials.username
    grant = permissions.consumer(names, subscribers).command(user, vhost_of(url))
    shown = ", ".join(repr(x) for x in exchanges[:3])
    more = f" and {len(exchanges) - 3} more" if len(exchanges) > 3 else ""
    return (
        f"user {user!r} may not write to exchange {shown}{more} (ACCESS_REFUSED), where "
        "this consumer publishes retries and dead-letters; grant the consumer's "
        f"permissions (docs/operations.md, Least permissions): {grant}"
    )


def is_refusal(error: BaseException) -> bool:
    """True when a failed copy was refused for lack of permission (not a passing fault).

    The publisher reports a channel the broker closed with its reply text,
    which for a permission refusal starts with ``ACCESS_REFUSED``.
    """
    return "ACCESS_REFUSED" in str(error)


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
