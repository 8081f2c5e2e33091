"""Publish events to the hub; a publish returns once the broker confirmed it.

Guarantee: :meth:`Publisher.publish` returns only after the broker's
publisher confirm, which for the hub's durable quorum queues means the event
is stored on a majority of nodes. Any other outcome (nack, channel or
connection lost, no confirm within ``confirm_timeout``) raises
:class:`~hubbub.errors.PublishError`; the event may then be stored or not, so
publish again: consumers deduplicate by ``message_id``, which a retry keeps.
A lost connection is reopened on the next publish. Events no subscriber
matches are not dropped: the hub's alternate exchange parks them in the
``<hub>.unrouted`` queue.

Across a broker restart or a network cut the publisher raises, it does not
retry on its own (a hidden retry loop would block callers for as long as
the outage lasts and hide it): every event in flight when the connection
drops fails with PublishError (stored or not: publish again with the same
id), and while the broker stays unreachable each publish fails fast with
:class:`~hubbub.errors.BrokerConnectionError` (nothing was sent). The first
publish after the broker is back reconnects. With several cluster nodes
listed, each publisher starts on a random one and the next publish after a
lost connection tries the other nodes first (``tests/cluster``). The fault suite
(``tests/fault/test_broker_restart.py``) publishes a stream through a
restart this way and loses nothing.

One publisher is safe to share between threads; all of them pipeline
through one connection.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pika

from hubbub import envelope
from hubbub.connection import node_order, parameters, resolve_urls, rotate_past
from hubbub.errors import HubbubError, PublishError
from hubbub.producers.confirms import ConfirmGroup
from hubbub.producers.link import DEFAULT_WINDOW, Link, Outgoing
from hubbub.producers.message import EventMessage, check_event, delay_seconds, event_message
from hubbub.topology.names import HubNames

#: Seconds to wait for the broker's confirm of one publish.
DEFAULT_CONFIRM_TIMEOUT = 30.0
#: Events publish_many prepares and hands to the I/O thread at a time.
CHUNK = 250


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event to publish with :meth:`Publisher.publish_many`."""

    topic: str
    data: Any
    headers: Mapping[str, Any] | None = None
    message_id: str | None = None
    delay: float | timedelta | str | None = None
    deliver_at: datetime | None = None


class Publisher:
    """Confirmed, persistent publishing of events to one hub."""

    def __init__(
        self,
        hub: str,
        *,
        url: str | None = None,
        name: str = "hubbub publisher",
        window: int = DEFAULT_WINDOW,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
    ) -> None:
        self.names = HubNames(hub)
        self.urls = resolve_urls(url)
        self.confirm_timeout = confirm_timeout
        self._params = parameters(node_order(self.urls), name=name)
        self._window = window
        self._lock = threading.Lock()
        self._link: Link | None = None

    # -- events -------------------------------------------------------------

    def publish(
        self,
        topic: str,
        data: Any = None,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        delay: float | timedelta | str | None = None,
        deliver_at: datetime | None = None,
    ) -> str:
        """Publish one event and wait for the broker's confirm; returns its id."""
        message_id = message_id or envelope.new_id()
        seconds = delay_seconds(delay, deliver_at)
        message = event_message(
            self.names, topic, data, message_id=message_id, headers=headers, seconds=seconds
        )
        self._publish_one(message)
        return message_id

    def publish_many(self, events: Iterable[OutgoingEvent]) -> list[str]:
        """Publish many events with their confirms pipelined; waits for all.

        Every event is validated before any is sent, so a bad topic or delay
        raises with nothing published. Raises PublishError if any was not
        confirmed, after every other one has been confirmed or failed;
        ``error.failed`` lists the ids.
        """
        batch = list(events)
        # One group for the batch: confirms are counted, not a Future each (confirms.py).
        group = ConfirmGroup(len(batch))
        ids: list[str] = []
        for start, prepared in self._prepared_chunks(batch):
            self._send_all(
                [
                    Outgoing(m.exchange, m.routing_key, m.body, m.properties, group=group, index=i)
                    for i, (_, m) in enumerate(prepared, start)
                ]
            )
            ids += [message_id for message_id, _ in prepared]
            time.sleep(0)  # let the I/O thread publish it now, not after a GIL switch interval
        unsettled = [] if group.wait(self.confirm_timeout) else group.unsettled()
        _raise_unconfirmed(ids, [ids[i] for i in sorted({*unsettled, *group.failed})])
        return ids

    # -- asyncio ------------------------------------------------------------

    async def apublish(
        self,
        topic: str,
        data: Any = None,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        delay: float | timedelta | str | None = None,
        deliver_at: datetime | None = None,
    ) -> str:
        """:meth:`publish` for asyncio: the same confirm guarantee, the loop never blocked.

        Connecting runs in the loop's default executor; the confirm is
        awaited through the I/O thread's future. Cancelling the caller before
        the I/O thread took the message withdraws it; after that the event
        may or may not be stored, as after a timeout.
        """
        message_id = message_id or envelope.new_id()
        message = event_message(
            self.names,
            topic,
            data,
            message_id=message_id,
            headers=headers,
            seconds=delay_seconds(delay, deliver_at),
        )
        await self.asend(message.exchange, message.routing_key, message.body, message.properties)
        return message_id

    async def apublish_many(self, events: Iterable[OutgoingEvent]) -> list[str]:
        """:meth:`publish_many` for asyncio: confirms pipelined, the loop never blocked."""
        prepared = self._prepare(events)
        ids = [message_id for message_id, _ in prepared]
        sends = [self.asend(m.exchange, m.routing_key, m.body, m.properties) for _, m in prepared]
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, PublishError):
                raise result
        _raise_unconfirmed(
            ids, [i for i, r in zip(ids, results, strict=True) if isinstance(r, PublishError)]
        )
        return ids

    async def asend(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        *,
        mandatory: bool = False,
    ) -> None:
        """:meth:`send` and :meth:`wait` for asyncio: returns once the broker confirmed."""
        link = self._link
        if link is None or link.dead.is_set():
            # Connecting blocks for a network round trip or more: not on the loop.
            link = await asyncio.get_running_loop().run_in_executor(None, self._current_link)
        future: Future[None] = Future()
        link.send(Outgoing(exchange, routing_key, body, properties, future, mandatory))
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), self.confirm_timeout)
        except asyncio.TimeoutError as exc:
            raise PublishError(_NOT_CONFIRMED.format(self.confirm_timeout)) from exc

    async def aclose(self) -> None:
        """:meth:`close` for asyncio (waits for in-flight confirms off the loop)."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def _prepared_chunks(
        self, batch: list[OutgoingEvent]
    ) -> Iterator[tuple[int, list[tuple[str, EventMessage]]]]:
        """``batch`` prepared chunk by chunk (with each chunk's start); raises before the first.

        Every event is checked before the first chunk is prepared
        (:func:`check_event` raises what preparing would), so publish_many
        sends nothing from a batch with a bad event. Preparing :data:`CHUNK`
        events at a time lets building messages overlap waiting for the broker
        and reuses memory chunk after chunk.
        """
        for event in batch:
            check_event(event.topic, event.data, event.delay, event.deliver_at)
        for start in range(0, len(batch), CHUNK):
            yield start, self._prepare(batch[start : start + CHUNK])

    def _prepare(self, events: Iterable[OutgoingEvent]) -> list[tuple[str, EventMessage]]:
        """Each event's id and message; raises on the first invalid one, before any send."""
        prepared = []
        for event in events:
            message_id = event.message_id or envelope.new_id()
            message = event_message(
                self.names,
                event.topic,
                event.data,
                message_id=message_id,
                headers=event.headers,
                seconds=delay_seconds(event.delay, event.deliver_at),
            )
            prepared.append((message_id, message))
        return prepared

    def _publish_one(self, message: EventMessage) -> None:
        """Send ``message`` and wait for its confirm; raises PublishError otherwise.

        A group of one, not a Future: its bare lock is the cheapest wake-up
        CPython has, which is what many threads publishing at once pay for
        (confirms.py).
        """
        group = ConfirmGroup(1)
        self._current_link().send(
            Outgoing(
                message.exchange,
                message.routing_key,
                message.body,
                message.properties,
                group=group,
            )
        )
        if not group.wait(self.confirm_timeout):
            raise PublishError(_NOT_CONFIRMED.format(self.confirm_timeout))
        if group.errors:
            raise group.errors[0]

    def _send_all(self, messages: Sequence[Outgoing]) -> None:
        """Hand ``messages`` to the link at once (one lock, one wake-up of the I/O thread)."""
        self._current_link().send_many(messages)

    # -- raw messages -------------------------------------------------------

    def send(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        *,
        mandatory: bool = False,
    ) -> Future[None]:
        """Publish a prepared message; the future resolves on its confirm."""
        future: Future[None] = Future()
        self._current_link().send(
            Outgoing(exchange, routing_key, body, properties, future, mandatory)
        )
        return future

    def wait(self, future: Future[None]) -> None:
        """Block until ``future``'s confirm, raising PublishError on any other outcome."""
        try:
            future.result(timeout=self.confirm_timeout)
        except FutureTimeout as exc:
            raise PublishError(_NOT_CONFIRMED.format(self.confirm_timeout)) from exc

    def close(self) -> None:
        """Wait for in-flight confirms and close the connection."""
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _current_link(self) -> Link:
        link = self._link
        if link is not None and not link.dead.is_set():
            return link
        with self._lock:
            if self._link is None or self._link.dead.is_set():
                if self._link is not None:  # the node it used is tried last
                    self._params = rotate_past(self._params, self._link.node)
                    self._link = None
                link = Link(self._params, window=self._window, urls=self.urls)
                try:
                    link.ready.result(timeout=60)
                except HubbubError:
                    raise
                except FutureTimeout as exc:
                    raise PublishError("timed out connecting to the broker") from exc
                self._link = link
            return self._link


_NOT_CONFIRMED = (
    "the broker did not confirm within {:g} s; "
    "the event may or may not be stored: publish it again with the same id"
)


def _raise_unconfirmed(ids: list[str], failed: list[str]) -> None:
    """Raise PublishError naming ``failed`` when a batch was not wholly confirmed."""
    if failed:
        raise PublishError(f"{len(failed)} of {len(ids)} events were not confirmed", failed=failed)


__all__: Sequence[str] = ["OutgoingEvent", "Publisher"]
