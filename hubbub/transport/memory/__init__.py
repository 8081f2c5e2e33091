"""The in-memory transport: RabbitMQ's routing, acks, dead-letters and TTLs in one process.

Built on :class:`~hubbub.transport.memory.broker.MemoryBroker` (the hub's
own layout, topic matching, alternate exchanges, the TTL ladder), with the
publisher and consumer transports of :mod:`hubbub.transport.base`, so the
real :class:`~hubbub.producers.Publisher` and
:class:`~hubbub.consumers.Worker` run on it (the in-memory hub does).
Deterministic: deliveries come in a fixed order and time is the clock it is
given. The conformance suite (``tests/contract/test_transport_conformance.py``)
holds it to the same contract as the RabbitMQ transport.
"""

from hubbub.transport.memory.broker import MemoryBroker as MemoryBroker
from hubbub.transport.memory.broker import Queued as Queued
from hubbub.transport.memory.consumer import MemoryConsumerTransport as MemoryConsumerTransport
from hubbub.transport.memory.publisher import MemoryPublisherTransport as MemoryPublisherTransport
from hubbub.transport.memory.transport import MemoryTransport as MemoryTransport
