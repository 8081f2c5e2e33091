"""Where a replayed dead letter goes, and with which headers (pure).

Replay sends an event back to the one subscriber that dead-lettered it (never
to the others, who handled it already) with its attempt count reset.
"""

from __future__ import annotations

import pika

from hubbub import envelope
from hubbub.consumers.handling import copy_properties
from hubbub.topology import delay
from hubbub.topology.names import HubNames


def replay_message(
    names: HubNames, subscriber: str, props: pika.BasicProperties
) -> tuple[str, str, pika.BasicProperties]:
    """Exchange, routing key and properties that put a dead letter back in ``subscriber``'s queue.

    The delivery exchange's ``q.<subscriber>`` binding (for a zero delay)
    reaches that queue alone. The failure record and the broker's death headers are dropped;
    the attempt count starts again at 1.
    """
    headers = {
        k: v
        for k, v in envelope.without_broker_headers(props.headers).items()
        if not k.startswith(envelope.FAILURE_PREFIX)
    }
    headers[envelope.ATTEMPT] = 1
    return (
        delay.entry_exchange(names, 0),
        delay.queue_key(0, subscriber),
        copy_properties(props, headers),
    )
