"""RabbitMQ as a :class:`~hubbub.transport.base.Transport`: what a :class:`~hubbub.Hub` runs on.

It builds the broker client's publisher and consumer transports
(:func:`hubbub.transport.publisher_transport`, :func:`~hubbub.transport.consumer_transport`:
imported on first use, so a hub that only declares loads no I/O machinery),
declares topologies with :mod:`hubbub.topology.sync`, and goes by the wall clock.
"""

from __future__ import annotations

import time

from hubbub.connection import resolve_urls
from hubbub.topology.model import Topology
from hubbub.topology.plan import Plan
from hubbub.topology.sync import apply as apply_topology
from hubbub.topology.sync import make_plan
from hubbub.transport import consumer_transport, publisher_transport
from hubbub.transport.base import ConsumerTransport, PublisherTransport


class RabbitMQTransport:
    """The broker (or cluster) at ``url``; None: ``HUBBUB_URL``, else the local one.

    The URL is resolved on each use, not here, so a hub built at import time
    follows a ``HUBBUB_URL`` set later (a test's vhost).
    """

    in_memory = False

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    @property
    def urls(self) -> list[str]:
        return resolve_urls(self.url)

    def publisher(self, *, name: str) -> PublisherTransport:
        return publisher_transport(self.urls, name=name)

    def consumer(self, *, name: str) -> ConsumerTransport:
        return consumer_transport(self.urls, name=name)

    def apply(self, topology: Topology) -> Plan | None:
        return apply_topology(topology, self.urls)

    def plan(self, topology: Topology) -> Plan:
        return make_plan(topology, self.urls)

    def time(self) -> float:
        return time.time()
