"""Publish hub events through kombu: a Celery app's connection pool, or any kombu Connection.

For apps that already hold a kombu connection stack to the broker (every
Celery app does: ``app.pool``). The events are the very messages hubbub's
own :class:`~hubbub.producers.Publisher` sends (same envelope, exchange,
delay ladder keys: both build them with
:func:`hubbub.producers.message.event_message`), with the same guarantee:
:meth:`KombuPublisher.publish` returns only after the broker's publisher
confirm; anything else raises :class:`~hubbub.errors.PublishError` (publish
again with the same id: consumers deduplicate by it) and an unreachable
broker raises :class:`~hubbub.errors.BrokerConnectionError`. Events no
subscriber matches are parked by the hub's alternate exchange.

Confirms need the connection's ``transport_options={"confirm_publish":
True}`` on the py-amqp transport (Celery: ``broker_transport_options``);
the constructor refuses a connection without it rather than publish
unconfirmed. kombu then waits for each confirm in turn, one round trip per
event, so this publisher is slower than hubbub's pipelined one (README:
"When to use which publisher").

Thread safety: with a pool, each publish acquires a connection of its own
and releases it, so threads publish concurrently; with a single Connection,
publishes are serialized by a lock (kombu connections are not thread-safe).

Needs the ``kombu`` extra: ``pip install hubbub[kombu]``. Only importing
this module imports kombu.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

try:
    import amqp
    import amqp.exceptions as amqp_errors
    from kombu.connection import Connection, ConnectionPool
    from kombu.exceptions import LimitExceeded, OperationalError
    from kombu.transport.pyamqp import Transport as PyAmqpTransport
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("hubbub.producers.kombu needs kombu: pip install 'hubbub[kombu]'") from exc

from hubbub.codecs import Codecs
from hubbub.connection import connect_failure, mask, node_order, resolve_urls
from hubbub.errors import ConfigurationError, PublishError
from hubbub.message import PROPERTY_NAMES, Message, Outbound
from hubbub.producers.message import EventMessages, OutgoingEvent, PublishOptions, Topics
from hubbub.producers.publisher import DEFAULT_CONFIRM_TIMEOUT
from hubbub.topology.names import HubNames

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Seconds a publish waits for a free connection of a pool.
DEFAULT_ACQUIRE_TIMEOUT = 10.0

#: hubbub's property names (AMQP's) with py-amqp's (kombu's transport) spelling where it differs.
_AMQP_NAMES = {"headers": "application_headers"}


class KombuPublisher:
    """Confirmed, persistent publishing of events to one hub over kombu."""

    def __init__(
        self,
        hub: str,
        connection: Connection | ConnectionPool,
        *,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        middleware: Sequence[Any] = (),
        codecs: Codecs | None = None,
    ) -> None:
        """``connection``: a kombu ``Connection`` or ``ConnectionPool`` (``app.pool``).

        ``middleware`` and ``codecs`` as :class:`~hubbub.producers.Publisher`'s
        (give it the hub's: ``hub.middleware``, ``hub.codecs``).

        Raises ConfigurationError unless its connections use the py-amqp
        transport with ``confirm_publish`` on. The publisher does not own a
        connection or pool it is given: :meth:`close` leaves it open.
        """
        if isinstance(connection, ConnectionPool):
            require_confirms(connection.connection)
        else:
            require_confirms(connection)
        self.names = HubNames(hub)
        self._events = EventMessages(self.names, codecs=codecs, middleware=middleware)
        self.confirm_timeout = confirm_timeout
        self.acquire_timeout = acquire_timeout
        self._source = connection
        self._lock = threading.Lock()
        self._owned: Connection | None = None

    @classmethod
    def from_url(cls, hub: str, url: str | None = None, **options: Any) -> KombuPublisher:
        """A publisher on a connection of its own, with confirms on; :meth:`close` closes it.

        ``url`` as everywhere in hubbub (default ``HUBBUB_URL``); several
        comma-separated URLs become kombu's failover list.
        """
        urls = ";".join(node_order(resolve_urls(url)))
        connection = Connection(urls, transport_options={"confirm_publish": True})
        publisher = cls(hub, connection, **options)
        publisher._owned = connection
        return publisher

    def publish(self, topic: Topics, data: Any = None, **options: Unpack[PublishOptions]) -> str:
        """Publish one event and wait for the broker's confirm; returns its id.

        ``options``: :class:`~hubbub.producers.message.PublishOptions`.
        """
        message_id, message = self._events.one(topic, data, options)
        with self._connection() as connection:
            self._send(connection, message)
        return message_id

    def publish_many(self, events: Iterable[OutgoingEvent]) -> list[str]:
        """Publish events one after the other on one connection, each confirmed.

        Every event is checked first (a bad one raises with nothing sent,
        as :meth:`Publisher.publish_many`). Stops at the first failure: the
        PublishError's ``failed`` lists the ids not confirmed (that one and
        every later one), in order.
        """
        batch = list(events)
        self._events.check(batch)
        prepared = self._events.many(batch)
        done = 0
        try:
            with self._connection() as connection:
                for _, message in prepared:
                    self._send(connection, message)
                    done += 1
        except PublishError as exc:
            exc.failed = [message_id for message_id, _ in prepared[done:]]
            raise
        return [message_id for message_id, _ in prepared]

    def close(self) -> None:
        """Close the connection :meth:`from_url` opened (a given one is the caller's)."""
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> KombuPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections --------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        source = self._source
        if not isinstance(source, ConnectionPool):
            with self._lock:
                yield source
            return
        try:
            connection = source.acquire(block=True, timeout=self.acquire_timeout)
        except LimitExceeded as exc:
            raise PublishError(
                f"no free connection in the kombu pool within {self.acquire_timeout:g} s: "
                "raise the pool's limit (Celery: broker_pool_limit) or publish from fewer threads"
            ) from exc
        try:
            yield connection
        finally:
            connection.release()

    def _channel(self, connection: Connection) -> Any:
        """The connection's default channel, connecting if need be.

        One attempt per failover URL, without kombu's back-off sleeps: like
        hubbub's own publisher, a publish fails fast and the caller decides
        whether to try again.
        """
        try:
            connection.ensure_connection(
                max_retries=max(len(connection.alt) - 1, 0), interval_start=0, interval_step=0
            )
            return connection.default_channel
        except (OperationalError, amqp_errors.AMQPError, OSError) as exc:
            connection.collect()
            url = connection.as_uri(include_password=True)
            raise connect_failure(exc.__cause__ or exc, [url]) from exc

    def _send(self, connection: Connection, message: Outbound) -> None:
        channel = self._channel(connection)
        amqp_message = amqp.Message(message.message.body, **amqp_properties(message.message))
        try:
            channel.basic_publish(
                amqp_message,
                exchange=message.exchange,
                routing_key=message.routing_key,
                mandatory=False,
                timeout=self.confirm_timeout,
                confirm_timeout=self.confirm_timeout,
            )
        except amqp_errors.MessageNacked as exc:
            raise PublishError(
                f"the broker refused (nacked) an event for exchange {message.exchange!r}: "
                "it was not stored; publish it again with the same id"
            ) from exc
        except amqp_errors.ChannelError as exc:
            raise PublishError(refusal(message.exchange, exc)) from exc
        except TimeoutError as exc:
            # A late confirm would be taken for the next publish's: drop the connection.
            connection.collect()
            raise PublishError(
                f"the broker did not confirm within {self.confirm_timeout:g} s; "
                "the event may or may not be stored: publish it again with the same id"
            ) from exc
        except (*connection.connection_errors, OperationalError, OSError) as exc:
            connection.collect()
            raise PublishError(
                f"the connection to {mask(connection.as_uri(include_password=True))} was lost "
                f"before the broker confirmed ({type(exc).__name__}: {exc}); the event may or "
                "may not be stored: publish it again with the same id"
            ) from exc


def require_confirms(connection: Connection) -> None:
    """Raise ConfigurationError unless ``connection`` publishes with confirms."""
    if not isinstance(connection.transport, PyAmqpTransport):
        raise ConfigurationError(
            f"hubbub publishes through kombu's py-amqp transport only (amqp://), not "
            f"{type(connection.transport).__module__}: it needs publisher confirms"
        )
    if not (connection.transport_options or {}).get("confirm_publish"):
        raise ConfigurationError(
            "the kombu connection does not wait for publisher confirms, so hubbub could not "
            "tell a stored event from a lost one: create it with "
            "transport_options={'confirm_publish': True} "
            "(Celery: app.conf.broker_transport_options = {'confirm_publish': True})"
        )


def amqp_properties(message: Message) -> dict[str, Any]:
    """The set properties of ``message``, named as py-amqp names them (this publisher's edge)."""
    result = {}
    for name in PROPERTY_NAMES:
        value = getattr(message, name)
        if value is not None:
            result[_AMQP_NAMES.get(name, name)] = dict(value) if name == "headers" else value
    return result


def refusal(exchange: str, exc: Any) -> str:
    """One actionable sentence for the broker closing the channel on a publish."""
    code = getattr(exc, "reply_code", None)
    if code == 404:
        return (
            f"exchange {exchange!r} does not exist on the broker: apply the hub's topology "
            "first (hubbub topology apply); the event was not stored"
        )
    if code == 403:
        return f"the broker refused to let this user publish to {exchange!r} (write permission)"
    return f"the broker refused an event for exchange {exchange!r}: {exc}; it was not stored"


__all__: Sequence[str] = ["KombuPublisher", "amqp_properties", "require_confirms"]
