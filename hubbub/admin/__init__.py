"""Operate on failed and unrouted events: inspect, replay, purge; the hub's status; its archive.

Start with :class:`Admin`; the modules hold the parts (pure records and
filters, the browser that reads a queue without disturbing it, replay,
purge, status) for code that needs them alone.
"""

from hubbub.admin.access import AccessRefusedError
from hubbub.admin.admin import Admin
from hubbub.admin.archive import Archive, ArchivedEvent, ArchiveError, ReplayReport, Window
from hubbub.admin.edit import EditError
from hubbub.admin.filters import Selection, select
from hubbub.admin.listing import Summary
from hubbub.admin.purge import PurgeResult
from hubbub.admin.records import FailedEvent
from hubbub.admin.replay import ReplayError, ReplayResult, parse_rate
from hubbub.admin.status import HubStatus, QueueCounts, SubscriberStatus

__all__ = [
    "AccessRefusedError",
    "Admin",
    "Archive",
    "ArchiveError",
    "ArchivedEvent",
    "EditError",
    "FailedEvent",
    "HubStatus",
    "PurgeResult",
    "QueueCounts",
    "ReplayError",
    "ReplayReport",
    "ReplayResult",
    "Selection",
    "SubscriberStatus",
    "Summary",
    "Window",
    "parse_rate",
    "select",
]
