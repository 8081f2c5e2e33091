"""The least RabbitMQ permissions each kind of hubbub client needs on one hub.

RabbitMQ grants per virtual host three regular expressions over resource
names: *configure* (declare, delete), *write* (publish to an exchange, bind a
queue) and *read* (consume or get from a queue, bind from an exchange). A
passive declare, which consumers use to check their queue, needs none.
These functions derive the expressions from a hub's names, so they follow
renames; ``tests/fault/test_least_permissions.py`` proves on a real broker that
they are enough, and that they deny the rest.

- a publisher writes to the hub exchange, and to the delay ladder's entry
  levels and delivery exchange when it publishes with ``delay=``;
- a consumer reads its subscribers' queues, and writes like a publisher
  (events its handlers publish, retry copies into the ladder) plus to the
  dead-letter exchange;
- ``hubbub topology apply`` configures, writes and reads every name of the hub;
- ``hubbub archive`` reads the hub's archive and, to replay, declares a
  progress queue and publishes to the default exchange (copies aimed at one
  subscriber's queue, and the replay's marker into the archive). ``apply``
  backfilling a new subscriber does the same: give its user both grants.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hubbub.topology.names import LAYOUT_VERSION, HubNames

NOTHING = "^$"


@dataclass(frozen=True, slots=True)
class Permissions:
    """One ``rabbitmqctl set_permissions`` grant."""

    configure: str
    write: str
    read: str

    def command(self, user: str, vhost: str = "/") -> str:
        """The rabbitmqctl line granting these permissions to ``user``."""
        return (
            f"rabbitmqctl set_permissions -p '{vhost}' '{user}' "
            f"'{self.configure}' '{self.write}' '{self.read}'"
        )


def publisher(names: HubNames) -> Permissions:
    """Publish events, delayed ones included; nothing else."""
    return Permissions(NOTHING, _any(_publish_targets(names)), NOTHING)


def consumer(names: HubNames, subscribers: Sequence[str]) -> Permissions:
    """Consume ``subscribers``' queues, retry, dead-letter, publish follow-up events."""
    writes = [*_publish_targets(names), re.escape(names.dead_letter_exchange)]
    reads = [re.escape(names.queue(s)) for s in subscribers]
    return Permissions(NOTHING, _any(writes), _any(reads) if reads else NOTHING)


def admin(names: HubNames) -> Permissions:
    """Apply the topology: every exchange and queue of the hub (``topology apply``)."""
    hub = re.escape(names.hub)
    everything = _any([f"{hub}(\\..+)?", f"hubbub\\.{LAYOUT_VERSION}\\.{hub}\\..+"])
    return Permissions(everything, everything, everything)


def archive(names: HubNames) -> Permissions:
    """Read the hub's archive, replay it to a subscriber and resume (``hubbub archive``)."""
    own = f"hubbub\\.{LAYOUT_VERSION}\\.{re.escape(names.hub)}"
    progress = f"{own}\\.replay\\.[a-z0-9]{{12}}"
    return Permissions(
        _any([progress]), _any(["amq\\.default"]), _any([f"{own}\\.archive", progress])
    )


def _publish_targets(names: HubNames) -> list[str]:
    ladder = re.escape(names.level(0)).replace("L00", r"L\d\d")
    return [re.escape(names.exchange), ladder, re.escape(names.delivery)]


def _any(patterns: Sequence[str]) -> str:
    return "^(" + "|".join(patterns) + ")$"
