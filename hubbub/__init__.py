"""hubbub: RabbitMQ as the event hub of an application.

Publish events to one durable topic exchange; every subscriber consumes
its own durable queue, acks, retries with backoff inside the broker, and
dead-letters what keeps failing to its own dead-letter queue.

The names below are imported on first use (PEP 562), not with the package:
every pytest run of an app imports ``hubbub.testing.pytest`` (the plugin
entry point), hence this package, and must not pay for the broker client,
pydantic and the hub machinery unless a test uses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbub._lazy import exports

if TYPE_CHECKING:
    from hubbub.codecs import Codec, Codecs
    from hubbub.current import apublish, apublish_many, publish, publish_many
    from hubbub.envelope import Event
    from hubbub.errors import DontRetry, HubbubError, PublishError, Retry, TopologyError
    from hubbub.hub import Hub
    from hubbub.middleware import Middleware
    from hubbub.producers import OutgoingEvent, Publisher
    from hubbub.topology import RetryPolicy, Subscriber, Topology

#: Where each public name lives.
_HOMES = {
    "Codec": "hubbub.codecs",
    "Codecs": "hubbub.codecs",
    "DontRetry": "hubbub.errors",
    "Event": "hubbub.envelope",
    "Hub": "hubbub.hub",
    "HubbubError": "hubbub.errors",
    "Middleware": "hubbub.middleware",
    "OutgoingEvent": "hubbub.producers",
    "PublishError": "hubbub.errors",
    "Publisher": "hubbub.producers",
    "Retry": "hubbub.errors",
    "RetryPolicy": "hubbub.topology",
    "Subscriber": "hubbub.topology",
    "Topology": "hubbub.topology",
    "TopologyError": "hubbub.errors",
    "apublish": "hubbub.current",
    "apublish_many": "hubbub.current",
    "publish": "hubbub.current",
    "publish_many": "hubbub.current",
}

__all__ = [
    "Codec",
    "Codecs",
    "DontRetry",
    "Event",
    "Hub",
    "HubbubError",
    "Middleware",
    "OutgoingEvent",
    "PublishError",
    "Publisher",
    "Retry",
    "RetryPolicy",
    "Subscriber",
    "Topology",
    "TopologyError",
    "apublish",
    "apublish_many",
    "publish",
    "publish_many",
]
__version__ = "0.1.0"


__getattr__, __dir__ = exports("hubbub", _HOMES, globals())
