"""Ack coalescing: a multiple ack never covers a delivery that is not finished."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.transport.acks import AckTracker


class Channel:
    """The broker's view of one channel's unacked deliveries."""

    def __init__(self) -> None:
        self.unacked: set[int] = set()
        self.acked: list[int] = []

    def ack(self, tag: int, multiple: bool, finished: set[int]) -> None:
        covered = {t for t in self.unacked if t <= tag} if multiple else {tag}
        assert tag in self.unacked, f"ack of unknown or settled tag {tag}"
        unfinished = covered - finished
        assert not unfinished, f"ack {tag} multiple={multiple} covers unfinished {unfinished}"
        self.unacked -= covered
        self.acked += sorted(covered)


def test_in_order_completions_coalesce_into_one_multiple_ack():
    tracker = AckTracker()
    for tag in (1, 2, 3):
        tracker.add(tag)
    assert tracker.complete([1, 2, 3]) == [(3, True)]
    assert len(tracker) == 0


def test_a_single_finished_delivery_is_acked_alone():
    tracker = AckTracker()
    tracker.add(1)
    assert tracker.complete([1]) == [(1, False)]


def test_a_finished_delivery_behind_a_slow_one_is_acked_alone_at_once():
    tracker = AckTracker()
    for tag in (1, 2, 3):
        tracker.add(tag)
    assert tracker.complete([3]) == [(3, False)]
    assert tracker.complete([2]) == [(2, False)]
    assert len(tracker) == 1
    assert tracker.complete([1]) == [(1, False)]
    assert len(tracker) == 0


def test_the_front_run_is_coalesced_and_later_ones_acked_singly():
    tracker = AckTracker()
    for tag in range(1, 6):
        tracker.add(tag)
    assert tracker.complete([1, 2, 4]) == [(2, True), (4, False)]
    assert tracker.complete([3, 5]) == [(5, True)]  # covers 3 and 5; 4 was acked already
    assert len(tracker) == 0


def test_forgotten_deliveries_do_not_block_coalescing():
    tracker = AckTracker()
    for tag in (1, 2, 3):
        tracker.add(tag)
    tracker.forget(1)  # nacked
    assert tracker.complete([2, 3]) == [(3, True)]
    tracker.forget(99)  # unknown: ignored
    assert tracker.complete([42]) == []


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 30).flatmap(lambda n: st.permutations(range(1, n + 1))),
    st.lists(st.integers(1, 6), min_size=1, max_size=30),
)
def test_never_acks_an_unfinished_delivery_and_acks_each_finished_one_once(order, sizes):
    """Deliveries arrive in tag order; handlers finish them in any order, in batches."""
    tracker, channel = AckTracker(), Channel()
    finished: set[int] = set()
    arrived = 0
    rest = list(order)
    for size in sizes * len(order):  # enough batches to finish everything
        if not rest:
            break
        batch, rest = rest[:size], rest[size:]
        while arrived < max(batch):  # a delivery finishes only after it arrived
            arrived += 1
            tracker.add(arrived)
            channel.unacked.add(arrived)
        finished |= set(batch)
        for tag, multiple in tracker.complete(batch):
            channel.ack(tag, multiple, finished)
    assert channel.unacked == set()
    assert sorted(channel.acked) == sorted(order)
    assert len(tracker) == 0
