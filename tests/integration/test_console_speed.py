"""The console's first page of a large dead-letter queue comes before the pass ends.

20,000 events (the full-size figures, 100,000, come from bench/console.py):
the first page is answered as soon as its rows are read, long before the
browse has gone through the queue, and the overview never browses.
Runtime about 15 s.
"""

from __future__ import annotations

import time

import pytest

from bench.dlq import fill
from hubbub.admin import Admin
from hubbub.console.service import CHUNKS, ConsoleService, Query

pytestmark = pytest.mark.integration

EVENTS = 20_000


def test_the_first_page_and_the_overview_do_not_wait_for_the_whole_queue(
    declare, hub_name, broker_url
):
    topology = declare(
        {"hub": hub_name, "subscribers": {"work": {"handler": "x:y", "topics": ["#"]}}}
    )
    ids = fill(broker_url, topology, EVENTS)
    service = ConsoleService(Admin(topology, url=broker_url, chunks=CHUNKS))

    started = time.perf_counter()
    overview = service.overview()
    assert time.perf_counter() - started < 1.0
    assert overview.status.subscribers[0].subscriber == "work"

    for attempt in ("never read", "every message redelivered"):
        started = time.perf_counter()
        page = service.page("work", Query(size=50))
        took = time.perf_counter() - started
        assert [e.id for e in page.events] == ids[:50], attempt
        assert not page.complete and page.scanned < EVENTS, attempt  # answered mid-pass
        assert took < 3.0, (attempt, took)
        tally = service.tally("work")  # waits for the pass: it counted everything
        assert tally is not None and tally.scanned == EVENTS
        assert sum(tally.groups.values()) == EVENTS
