"""The record of the last ``topology apply``, kept on the broker itself (pure).

The broker shows what a subscriber receives (bindings) and its delay (the
wait queue's name), but not its settings, retry policy or handler. To say
what a change of those means, ``apply`` leaves one message in the hub's
record queue (:attr:`~hubbub.topology.names.HubNames.applied`): the applied
topology as JSON, with when and from which file. The record lives where the
hub lives, so every machine that plans against the broker reads the same
one, and destroying the hub removes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError

from hubbub.topology.model import Topology

#: Version of the record's JSON; a record of another version is not read.
FORMAT = 1
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


def encode(applied: Applied) -> bytes:
    """The record's message body."""
    return json.dumps(
        {
            "format": FORMAT,
            "at": applied.at.astimezone(timezone.utc).isoformat(),
            "file": applied.file,
            "topology": _ADAPTER.dump_python(applied.topology, mode="json"),
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
        topology = _ADAPTER.validate_python(data["topology"])
        at = datetime.fromisoformat(data["at"])
        file = data.get("file")
    except (ValueError, KeyError, TypeError, ValidationError):
        return None
    return Applied(topology, at, file if isinstance(file, str) else None)


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from a record (dates become strings, tuples lists)."""
    return json.loads(json.dumps(value, default=str))
