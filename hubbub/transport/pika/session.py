"""The blocking :class:`~hubbub.transport.session.BrokerSession` on pika's ``BlockingConnection``.

:func:`open_session` connects to the first of the hub's URLs that answers
(in the order given, as :func:`hubbub.transport.pika.params.connect` always did), with
hubbub's connection parameters (heartbeat, timeouts, TLS). Work runs on one
channel, reopened after the broker refused an operation on it; each reader
has a channel of its own. pika's errors are translated here and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, TypeVar

import pika
import pika.exceptions as pe
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

from hubbub.errors import PublishError
from hubbub.message import Delivery, Message, new_delivery
from hubbub.transport.errors import ConnectionLostError, NotFoundError, Permission, refusal
from hubbub.transport.pika.convert import from_pika
from hubbub.transport.pika.params import connect_error, parameters
from hubbub.transport.session import STREAM_OFFSET, QueueCounts, StreamOffset

T = TypeVar("T")


def connect(urls: Sequence[str], *, name: str) -> pika.BlockingConnection:
    """A blocking connection to the first of ``urls`` that answers, labelled ``name``."""
    try:
        return pika.BlockingConnection(parameters(urls, name=name))
    except (pe.AMQPError, OSError) as exc:
        raise connect_error(exc, urls) from exc


def open_session(urls: Sequence[str], *, name: str) -> PikaSession:
    """A session on the first of ``urls`` that answers (BrokerConnectionError if none)."""
    return PikaSession(connect(urls, name=name))


@contextmanager
def _edge(
    doing: str, permission: Permission | None, on_refused: Callable[[], None]
) -> Iterator[None]:
    """Translate pika's errors while ``doing``; ``on_refused`` forgets the closed channel."""
    try:
        yield
    except pe.ChannelClosedByBroker as exc:
        on_refused()
        raise refusal(exc.reply_code, exc.reply_text, permission=permission, doing=doing) from exc
    except (pe.AMQPError, OSError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise ConnectionLostError(
            f"lost the broker trying to {doing}: {detail}", detail=detail
        ) from exc


def _nothing() -> None:
    pass


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class PikaSession:
    """See :class:`~hubbub.transport.session.BrokerSession` (the contract)."""

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self._connection = connection
        self._channel: BlockingChannel | None = None
        server = connection._impl.server_properties or {}
        self._version = _text(server.get("version"))
        self._cluster = _text(server.get("cluster_name"))

    @property
    def server_version(self) -> str | None:
        return self._version

    @property
    def cluster_name(self) -> str | None:
        return self._cluster

    @property
    def is_open(self) -> bool:
        return bool(self._connection.is_open)

    # -- declaring ------------------------------------------------------------

    def declare_exchange(
        self, name: str, kind: str, *, arguments: Mapping[str, Any] | None = None
    ) -> None:
        args = dict(arguments) if arguments else None
        self._run(
            lambda c: c.exchange_declare(name, kind, durable=True, arguments=args),
            f"declare exchange {name!r}",
            "configure",
        )

    def declare_queue(self, name: str, *, arguments: Mapping[str, Any] | None = None) -> None:
        args = dict(arguments) if arguments else None
        self._run(
            lambda c: c.queue_declare(name, durable=True, arguments=args),
            f"declare queue {name!r}",
            "configure",
        )

    def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        self._run(
            lambda c: c.queue_bind(queue, exchange, routing_key),
            f"bind queue {queue!r} to exchange {exchange!r}",
            "write",
        )

    def unbind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        self._run(
            lambda c: c.queue_unbind(queue, exchange, routing_key),
            f"unbind queue {queue!r} from exchange {exchange!r}",
            "write",
        )

    def bind_exchange(self, destination: str, source: str, routing_key: str) -> None:
        self._run(
            lambda c: c.exchange_bind(destination, source, routing_key),
            f"bind exchange {destination!r} to exchange {source!r}",
            "write",
        )

    def unbind_exchange(self, destination: str, source: str, routing_key: str) -> None:
        self._run(
            lambda c: c.exchange_unbind(destination, source, routing_key),
            f"unbind exchange {destination!r} from exchange {source!r}",
            "write",
        )

    # -- looking --------------------------------------------------------------

    def queue_counts(self, name: str) -> QueueCounts | None:
        try:
            ok = self._run(
                lambda c: c.queue_declare(name, passive=True), f"read queue {name!r}", None
            )
        except NotFoundError:
            return None
        return QueueCounts(int(ok.method.message_count), int(ok.method.consumer_count))

    def exchange_exists(self, name: str) -> bool:
        try:
            self._run(
                lambda c: c.exchange_declare(name, passive=True), f"check exchange {name!r}", None
            )
        except NotFoundError:
            return False
        return True

    # -- deleting -------------------------------------------------------------

    def delete_queue(self, name: str) -> None:
        self._run(lambda c: c.queue_delete(name), f"delete queue {name!r}", "configure")

    def delete_exchange(self, name: str) -> None:
        self._run(lambda c: c.exchange_delete(name), f"delete exchange {name!r}", "configure")

    # -- browsing and the connection -------------------------------------------

    def reader(self) -> PikaReader:
        with _edge("open a channel", None, _nothing):
            return PikaReader(self, self._connection.channel())

    def put(self, exchange: str, body: bytes) -> None:
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        with _edge(f"publish to exchange {exchange!r}", "write", _nothing):
            channel = self._connection.channel()
            try:
                channel.confirm_delivery()
                channel.basic_publish(exchange, "", body, properties, mandatory=True)
            except (pe.UnroutableError, pe.NackError) as exc:
                raise PublishError(
                    f"the broker did not store the message published to exchange {exchange!r} "
                    f"({type(exc).__name__}): run 'hubbub topology apply' again"
                ) from exc
            finally:
                if channel.is_open:
                    channel.close()

    def peek(self, queue: str) -> bytes | None:
        message = self.peek_message(queue)
        return None if message is None else message.body

    def peek_message(self, queue: str) -> Message | None:
        """basic.get without ack on a channel of its own, closed at once: the broker
        gives the message back where it was."""
        try:
            with _edge(f"read queue {queue!r}", "read", _nothing):
                channel = self._connection.channel()
                try:
                    method, properties, body = channel.basic_get(queue, auto_ack=False)
                finally:
                    if channel.is_open:
                        channel.close()
        except NotFoundError:
            return None
        return from_pika(properties, bytes(body)) if method is not None else None

    def pump(self, seconds: float) -> None:
        with _edge("wait for deliveries", None, _nothing):
            self._connection.process_data_events(time_limit=seconds)

    def close(self) -> None:
        self._channel = None
        if self._connection.is_open:
            with suppress(pe.AMQPError, OSError):
                self._connection.close()

    def _run(
        self, step: Callable[[BlockingChannel], T], doing: str, permission: Permission | None
    ) -> T:
        """Run ``step`` on the work channel (opened when needed), translating errors."""
        with _edge(doing, permission, self._forget_channel):
            if self._channel is None or not self._channel.is_open:
                self._channel = self._connection.channel()
            return step(self._channel)

    def _forget_channel(self) -> None:
        self._channel = None


class PikaReader:
    """See :class:`~hubbub.transport.session.QueueReader` (the contract)."""

    def __init__(self, session: PikaSession, channel: BlockingChannel) -> None:
        self._session = session
        self._channel = channel
        self._received: list[tuple[str, Delivery]] = []
        self._queue = ""

    @property
    def is_open(self) -> bool:
        return bool(self._channel.is_open)

    def consume(
        self, queue: str, *, credit: int, tag: str, offset: StreamOffset | None = None
    ) -> None:
        self._queue = queue
        arguments = None if offset is None else {STREAM_OFFSET: offset}
        with self._edge(f"read queue {queue!r}", "read"):
            self._channel.basic_qos(prefetch_count=credit)
            self._channel.basic_consume(
                queue, self._on_delivery, consumer_tag=tag, arguments=arguments
            )

    def cancel(self, tag: str) -> None:
        with self._edge(f"read queue {self._queue!r}", "read"):
            self._channel.basic_cancel(tag)

    def received(self) -> list[tuple[str, Delivery]]:
        taken, self._received = self._received, []
        return taken

    def ack(self, tag: int, *, multiple: bool = False) -> None:
        with self._edge(f"remove a message from queue {self._queue!r}", "read"):
            self._channel.basic_ack(tag, multiple=multiple)

    def release(self, *, timeout: float) -> None:
        """Close through the asynchronous channel: it closes without cancelling.

        pika's ``BlockingChannel.close`` cancels every consumer and rejects
        (requeues) each delivery that reaches it meanwhile: a message in
        flight then goes back on its own, ahead of the held ones on RabbitMQ
        4.0.5 (checked; see :mod:`hubbub.admin.browse`).
        """
        impl = self._channel._impl
        with self._edge(f"close the reader of {self._queue!r}", None):
            impl.close()
        deadline = time.monotonic() + timeout
        while not impl.is_closed and time.monotonic() < deadline:
            self._session.pump(0.05)

    def _edge(self, doing: str, permission: Permission | None) -> AbstractContextManager[None]:
        """A refused step closed this reader's channel: nothing to forget, it reads closed."""
        return _edge(doing, permission, _nothing)

    def _on_delivery(
        self, _ch: BlockingChannel, method: Basic.Deliver, props: pika.BasicProperties, body: bytes
    ) -> None:
        delivery = new_delivery(
            method.delivery_tag,
            method.exchange,
            method.routing_key,
            bool(method.redelivered),
            from_pika(props, body),
        )
        self._received.append((method.consumer_tag, delivery))
