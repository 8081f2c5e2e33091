"""Every publish path raises PublishError listing exactly the ids not confirmed; no broker.

A stub transport stands in for the connection: it confirms, or dies
mid-batch the way the real one does when the broker goes away (what it held
fails, and reconnecting finds a closed port). ``tests/fault/test_publish_faults.py``
does the same to a real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

import hubbub.transport.pika.supervisor as supervisor_module
from hubbub import OutgoingEvent, Publisher
from hubbub.errors import BrokerConnectionError, PublishConnectionError, PublishError
from hubbub.producers.publisher import CHUNK
from hubbub.transport import publisher_transport
from hubbub.transport.base import Pending

CLOSED = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens: connecting is refused


class DiesAfterOneChunk:
    """Confirms the first chunk; with the second the connection is lost (both fail).

    Reconnecting then goes to the real transport, and finds a closed port.
    """

    blocked = None

    def __init__(self) -> None:
        self.chunks = 0
        self.real = publisher_transport([CLOSED], name="test")

    @property
    def live(self) -> bool:
        return self.chunks < 2

    def connect(self) -> None:
        if not self.live:
            self.real.connect()

    def send_many(self, messages: Sequence[Pending]) -> None:
        self.chunks += 1
        if self.chunks > 2:
            self.real.send_many(messages)
            return
        for message in messages:
            lost = PublishError("the connection to the broker closed before it confirmed")
            message.settle(lost if self.chunks == 2 else None)

    def close(self, timeout: float = 10.0) -> None:
        self.real.close(timeout)


def batch(count: int) -> list[OutgoingEvent]:
    return [OutgoingEvent("t", {"i": i}, message_id=f"e{i}") for i in range(count)]


def test_publish_many_when_the_broker_goes_mid_batch_lists_the_unconfirmed_ids():
    publisher = Publisher("events", url=CLOSED, transport=DiesAfterOneChunk())
    events = batch(4 * CHUNK)
    with pytest.raises(PublishError) as caught:
        publisher.publish_many(events)  # the third chunk finds the broker gone
    assert caught.value.failed == [e.message_id for e in events[CHUNK:]]
    text = str(caught.value)
    assert text.startswith(f"{3 * CHUNK} of {4 * CHUNK} events were not confirmed (")
    assert "the connection to the broker closed before it confirmed" in text
    assert "cannot connect to the broker" in text and "\n" not in text


def test_every_publish_path_to_an_unreachable_broker_lists_its_ids(monkeypatch):
    opened: list[object] = []
    real = supervisor_module.SelectConnection

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(supervisor_module, "SelectConnection", counted)
    publisher = Publisher("events", url=CLOSED)
    events = batch(3)
    ids = [e.message_id for e in events]
    calls = [
        (lambda: publisher.publish("t", {}, message_id="one"), ["one"]),
        (lambda: publisher.publish_many(events), ids),
        (lambda: asyncio.run(publisher.apublish("t", {}, message_id="one")), ["one"]),
        (lambda: asyncio.run(publisher.apublish_many(events)), ids),
    ]
    for call, failed in calls:
        opened.clear()
        with pytest.raises(PublishConnectionError) as caught:
            call()
        assert isinstance(caught.value, BrokerConnectionError)  # old handlers still catch it
        assert caught.value.failed == failed
        assert "(connection refused): is RabbitMQ running and reachable?" in str(caught.value)
        assert len(opened) == 1  # one attempt for the whole batch, not one per event
