"""A queue record without counts (RabbitMQ 4.x, management metrics off) is never read as empty."""

from __future__ import annotations

from hubbub.topology.names import HubNames
from hubbub.topology.observe import NO_COUNTS, NOT_YET_COUNTED, has_counts, observe, why_uncounted


class FakeAPI:
    def __init__(self, queues):
        self.queues = queues

    def in_vhost(self, what):
        return {"exchanges": [], "queues": self.queues, "bindings": []}[what]


def test_records_without_counts_are_listed_as_uncounted():
    counted = {"name": "h.a", "arguments": {}, "durable": True, "messages": 3}
    bare = {"name": "h.b", "arguments": {"x-queue-type": "quorum"}, "durable": True}
    observed = observe(FakeAPI([counted, bare, {"name": "other.c"}]), HubNames("h"))
    assert observed.uncounted == frozenset({"h.b"})
    assert observed.queues["h.a"].messages == 3
    assert set(observed.queues) == {"h.a", "h.b"}


def test_a_zero_count_is_a_count():
    assert has_counts({"name": "q", "messages": 0})
    assert has_counts({"name": "q", "messages_ready": 0})
    assert not has_counts({"name": "q", "arguments": {}, "state": "running"})


class Overview:
    def __init__(self, **fields):
        self.fields = fields

    def get(self, path):
        assert path == "overview"
        return self.fields


def test_only_an_api_without_metrics_is_a_lasting_reason():
    assert why_uncounted(Overview(disable_stats=True)) == NO_COUNTS
    assert why_uncounted(Overview(disable_stats=False)) == NOT_YET_COUNTED
    assert why_uncounted(Overview()) == NOT_YET_COUNTED
