"""hubbub: RabbitMQ as the event hub of an application.

Publish events to one durable topic exchange; every subscriber consumes
its own durable queue, acks, retries with backoff inside the broker, and
dead-letters what keeps failing to its own dead-letter queue.
"""

from hubbub.current import publish, publish_many
from hubbub.envelope import Event
from hubbub.errors import HubbubError, PublishError, Retry, TopologyError
from hubbub.hub import Hub
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.topology import RetryPolicy, Subscriber, Topology

__all__ = [
    "Event",
    "Hub",
    "HubbubError",
    "OutgoingEvent",
    "PublishError",
    "Publisher",
    "Retry",
    "RetryPolicy",
    "Subscriber",
    "Topology",
    "TopologyError",
    "publish",
    "publish_many",
]
__version__ = "0.1.0"
