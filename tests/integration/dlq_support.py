"""Helpers for the dead-letter tests: park failures as the consumer does, read queues back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from hubbub import envelope
from hubbub.admin.browse import Browser
from hubbub.consumers import failure
from hubbub.message import Outbound
from hubbub.producers import Publisher
from hubbub.topology.model import Topology


class PaymentDeclinedError(Exception):
    """An application exception with a qualified name (tests.integration.dlq_support...)."""


@dataclass(frozen=True)
class Failure:
    topic: str
    data: Any
    error: BaseException
    #: When it failed, in seconds before now.
    ago: float = 0.0
    attempt: int = 3


def park(url: str, topology: Topology, subscriber: str, failures: list[Failure]) -> list[str]:
    """Dead-letter events into ``subscriber``'s DLQ exactly as the consumer does; their ids."""
    names = topology.names
    ids = []
    now_ms = int(time.time() * 1000)
    with Publisher(topology.hub, url=url) as publisher:
        futures = []
        for f in failures:
            event_id = envelope.new_id()
            headers = failure.record(
                None,
                _raised(f.error),
                reason="attempts exhausted",
                topic=f.topic,
                attempt=f.attempt,
                subscriber=subscriber,
                queue=names.queue(subscriber),
                exchange=names.exchange,
                routing_key=f.topic,
                now_ms=now_ms - int(f.ago * 1000),
            )
            body = envelope.dumps(f.data)
            message = envelope.message(f.topic, body, message_id=event_id, headers=headers)
            futures.append(
                publisher.send(Outbound(names.dead_letter_exchange, subscriber, message))
            )
            ids.append(event_id)
        for future in futures:
            publisher.wait(future)
    return ids


def read(url: str, queue: str) -> list[tuple[str | None, dict[str, Any], bytes]]:
    """Every message of ``queue`` (id, headers, body), head first, left in place."""
    with Browser([url], queue) as browser:
        return [
            (m.message.message_id, dict(m.message.headers or {}), m.body)
            for m in browser.messages()
        ]


def ids_in(url: str, queue: str) -> list[str | None]:
    return [message_id for message_id, _, _ in read(url, queue)]


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as exc:  # we want its traceback
        return exc
