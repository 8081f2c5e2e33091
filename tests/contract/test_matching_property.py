"""Property: ``patterns.matches`` routes exactly as RabbitMQ's topic exchange does.

Hypothesis generates batches: a dozen queues, each bound by one to three
generated patterns to a temporary topic exchange, and a score of generated
routing keys published to it. Each queue must receive, in publish order and
once each, exactly the keys that some pattern of it matches by
``patterns.matches`` (the in-memory hub's one matcher). Words come from a
tiny alphabet (empty words included) so wildcards meet real collisions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pika.adapters.blocking_connection import BlockingChannel

from hubbub.testing.broker import unique_name
from hubbub.topology import patterns

pytestmark = pytest.mark.integration

QUEUES, MAX_KEYS = 12, 20
#: Examples per run; each checks QUEUES x up to MAX_KEYS (pattern set, key) cases.
EXAMPLES = 60

key_words = st.sampled_from(["a", "b", "c", ""])
pattern_words = st.sampled_from(["a", "b", "c", "*", "#", "#", ""])
keys = st.lists(key_words, min_size=0, max_size=5).map(".".join)
pattern = st.lists(pattern_words, min_size=0, max_size=5).map(".".join)
pattern_sets = st.lists(pattern, min_size=1, max_size=3, unique=True)

CASES: list[int] = []


@pytest.fixture(scope="module")
def exchange(hubbub_broker_url: str) -> Iterator[tuple[BlockingChannel, str, list[str]]]:
    connection = pika.BlockingConnection(pika.URLParameters(hubbub_broker_url))
    channel = connection.channel()
    channel.confirm_delivery()
    name = unique_name("t-matching")
    channel.exchange_declare(name, "topic", auto_delete=False)
    queues = [channel.queue_declare("", exclusive=True).method.queue for _ in range(QUEUES)]
    try:
        yield channel, name, queues
    finally:
        channel.exchange_delete(name)
        connection.close()  # the exclusive queues go with it
        print(f"\n{sum(CASES)} (pattern set, key) cases in {len(CASES)} examples")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bound=st.lists(pattern_sets, min_size=QUEUES, max_size=QUEUES),
    published=st.lists(keys, min_size=MAX_KEYS // 2, max_size=MAX_KEYS),
)
def test_matches_agrees_with_the_broker(exchange, bound, published):
    channel, name, queues = exchange
    for queue, pattern_set in zip(queues, bound, strict=True):
        for p in pattern_set:
            channel.queue_bind(queue, name, p)
    try:
        for i, key in enumerate(published):
            channel.basic_publish(name, key, str(i).encode())
        for queue, pattern_set in zip(queues, bound, strict=True):
            expected = [
                i
                for i, k in enumerate(published)
                if any(patterns.matches(p, k) for p in pattern_set)
            ]
            assert _drain(channel, queue) == expected, (pattern_set, published)
        CASES.append(len(queues) * len(published))
    finally:
        for queue, pattern_set in zip(queues, bound, strict=True):
            for p in pattern_set:
                channel.queue_unbind(queue, name, p)
            channel.queue_purge(queue)


def _drain(channel: BlockingChannel, queue: str) -> list[int]:
    got = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append(int(body))
