"""The record of the last ``topology apply``, kept on the broker itself (pure).

The broker shows what a subscriber receives (bindings) and its delay (the
wait queue's name), but not its settings, retry policy or handler. To say
what a change of those means, ``apply`` leaves one message in the hub's
record queue (:attr:`~hubbub.topology.names.HubNames.applied`): the applied
topology as JSON, with when and from which file. The record lives where the
hub lives, so every machine that plans against the broker reads the same
one, and destroying the hub removes it.

Settings are not kept as they are: anyone who may read the vhost's queues
can read the record, and settings hold API keys. Each value is kept as a
digest and, where safe, the text ``plan`` shows for it
(:mod:`hubbub.topology.masking`); read back, a subscriber's settings hold
:class:`~hubbub.topology.masking.Recorded` values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError

from hubbub.topology.masking import Recorded, Visibility, recorded
from hubbub.topology.model import Topology
from hubbub.topology.references import visibility_of

#: Version of the record's JSON; a record of another version is not read.
#: (1 kept settings values as they were.)
FORMAT = 2
#: The record queue's arguments: one message (a new one drops the old), never
#: dropped for being read (``plan`` reads it and gives it back every time).
QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    "x-max-length": 1,
    "x-overflow": "drop-head",
    "x-delivery-limit": 2**31 - 1,
}

_ADAPTER = TypeAdapter(Topology)


@dataclass(frozen=True, slots=True)
class Applied:
    """A topology as it was applied, when, and from which file (None: from code)."""

    topology: Topology
    at: datetime
    file: str | None = None

    def describe(self) -> str:
        """``applied 2026-12-02 08:30 UTC from topology.yaml`` (what ``plan`` compares with)."""
        when = self.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return f"last applied {when} from {self.file or 'code'}"


def encode(applied: Applied, visibility: Callable[[str], Visibility] = visibility_of) -> bytes:
    """The record's message body; ``visibility`` tells, by handler, which settings may be shown."""
    subscribers = applied.topology.subscribers
    bare = replace(
        applied.topology, subscribers=tuple(replace(s, settings={}) for s in subscribers)
    )
    settings = {
        sub.name: {
            key: {"digest": entry.digest, "shown": entry.shown}
            for key, entry in recorded(sub.settings, visibility(sub.handler)).items()
        }
        for sub in subscribers
        if sub.settings
    }
    return json.dumps(
        {
            "format": FORMAT,
            "at": applied.at.astimezone(timezone.utc).isoformat(),
            "file": applied.file,
            "topology": _ADAPTER.dump_python(bare, mode="json"),
            "settings": settings,
        },
        sort_keys=True,
    ).encode()


def decode(body: bytes) -> Applied | None:
    """The record in ``body``; None when it is not one this hubbub reads.

    A record written by another version, or that no longer validates, is
    treated as no record: ``plan`` then reads what the broker shows.
    """
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        topology = _with_settings(_ADAPTER.validate_python(data["topology"]), data["settings"])
        at = datetime.fromisoformat(data["at"])
        file = data.get("file")
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError):
        return None
    return Applied(topology, at, file if isinstance(file, str) else None)


def _with_settings(topology: Topology, settings: dict[str, dict[str, Any]]) -> Topology:
    """``topology`` with each subscriber's recorded settings (digests and shown texts)."""
    subscribers = tuple(
        replace(
            sub,
            settings={
                str(key): Recorded(str(entry["digest"]), _text(entry.get("shown")))
                for key, entry in settings.get(sub.name, {}).items()
            },
        )
        for sub in topology.subscribers
    )
    return replace(topology, subscribers=subscribers)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
