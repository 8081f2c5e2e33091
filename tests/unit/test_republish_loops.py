"""A republish chain that comes back to where it started is refused by the file's check."""

from __future__ import annotations

import pytest

from hubbub.errors import TopologyError
from hubbub.topology import loader

FILE = """\
hub: h
subscribers:
  loop:
    handler: republish
    topics: ["order.#"]
    settings: {topic: order.follow_up}
  ping:
    handler: republish
    topics: [a.ping]
    settings: {topic: a.pong, delay: 1s}
  pong:
    handler: republish
    topics: [a.pong]
    settings: {topic: [b.x, a.ping]}
  chain-end:
    handler: republish
    topics: [c.x]
    settings: {topic: d.x}
  listener:
    handler: log
    topics: ["#"]
"""


def test_every_subscriber_on_a_loop_is_named_on_its_line():
    with pytest.raises(TopologyError) as caught:
        loader.loads(FILE, source="f.yaml")
    error = caught.value
    assert [p.split(":")[0] for p in error.problems] == [
        "subscribers.loop.settings.topic",
        "subscribers.ping.settings.topic",
        "subscribers.pong.settings.topic",
    ]
    assert "(loop → loop)" in error.problems[0]
    assert "(ping → pong → ping)" in error.problems[1]
    assert error.lines == [6, 10, 14]


def test_a_chain_that_ends_and_a_catch_all_listener_are_fine():
    """Only republish subscribers continue a chain: a log on '#' receives every copy
    without sending it on."""
    text = FILE.split("  loop:")[0] + "  chain-end:" + FILE.split("  chain-end:")[1]
    topology = loader.loads(text)
    assert [s.name for s in topology.subscribers] == ["chain-end", "listener"]
