"""Hand an :class:`~hubbub.message.Outbound` to a :class:`Publisher` (admin replays).

The one place where the admin tools, which speak hubbub's message, meet
``Publisher.send``, which still takes the client's properties. When
``send`` takes an ``Outbound``, this body becomes ``publisher.send(outbound)``.
"""

from __future__ import annotations

from concurrent.futures import Future

from hubbub.message import Outbound
from hubbub.producers.publisher import Publisher
from hubbub.transport.pika.convert import to_pika


def send(publisher: Publisher, outbound: Outbound) -> Future[None]:
    """Publish ``outbound`` with confirms; the future resolves on its confirm."""
    message = outbound.message
    return publisher.send(
        outbound.exchange,
        outbound.routing_key,
        message.body,
        to_pika(message),
        mandatory=outbound.mandatory,
    )
