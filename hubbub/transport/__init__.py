"""The transport seam: how hubbub reaches a broker, behind small protocols.

Everything above this package (producers, consumers, topology, admin, the
test hubs) speaks :mod:`hubbub.message` and these protocols; each transport
(:mod:`hubbub.transport.pika` for RabbitMQ, an in-memory one for tests)
converts at its own edge. Only :mod:`hubbub.transport.pika` imports pika.
"""

# -- the blocking session (topology and admin work) ------------------------------------
from collections.abc import Sequence

from hubbub.transport.base import ConsumerTransport as ConsumerTransport
from hubbub.transport.base import PublisherTransport as PublisherTransport
from hubbub.transport.errors import AccessRefusedError as AccessRefusedError
from hubbub.transport.errors import ConnectionLostError as ConnectionLostError
from hubbub.transport.errors import NotFoundError as NotFoundError
from hubbub.transport.errors import PreconditionFailedError as PreconditionFailedError
from hubbub.transport.errors import RefusedError as RefusedError
from hubbub.transport.session import BrokerSession as BrokerSession
from hubbub.transport.session import QueueCounts as QueueCounts
from hubbub.transport.session import QueueReader as QueueReader


def open_session(urls: Sequence[str], *, name: str) -> BrokerSession:
    """A :class:`BrokerSession` on the first of ``urls`` that answers, labelled ``name``.

    RabbitMQ through the pika transport, imported on first use (so importing
    this package stays light).
    """
    from hubbub.transport.pika.session import open_session as open_pika_session

    return open_pika_session(urls, name=name)


def publisher_transport(
    urls: Sequence[str], *, name: str, window: int | None = None
) -> PublisherTransport:
    """The default :class:`PublisherTransport`: RabbitMQ at ``urls`` (pika, imported on use).

    ``window``: unconfirmed messages in flight at once (default 1000).
    """
    from hubbub.transport.pika.publisher import DEFAULT_WINDOW, PikaPublisherTransport

    return PikaPublisherTransport(urls, name=name, window=window or DEFAULT_WINDOW)


def client_loggers() -> tuple[str, ...]:
    """The logger names of the broker client the transport runs on (for log setup)."""
    from hubbub.transport.pika import CLIENT_LOGGERS

    return CLIENT_LOGGERS


def consumer_transport(urls: Sequence[str], *, name: str) -> ConsumerTransport:
    """The default :class:`ConsumerTransport`: RabbitMQ at ``urls`` (pika, imported on use)."""
    from hubbub.transport.pika.consumer import PikaConsumerTransport

    return PikaConsumerTransport(urls, name=name)
