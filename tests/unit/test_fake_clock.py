from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hubbub.testing.clock import FakeClock


class Alarms:
    """A clock listener holding alarms; records when each rang."""

    def __init__(self, clock: FakeClock, *times: float) -> None:
        self.clock = clock
        self.pending = sorted(times)
        self.rang: list[float] = []
        self.ticks = 0

    def next_due(self):
        return self.pending[0] if self.pending else None

    def on_time(self):
        self.ticks += 1
        while self.pending and self.pending[0] <= self.clock.time():
            self.rang.append(self.clock.time())
            due = self.pending.pop(0)
            if due == 10:  # an alarm that sets another one, inside the same advance
                self.pending = sorted([*self.pending, 15.0])


def test_advance_stops_at_every_due_moment_even_ones_set_on_the_way():
    clock = FakeClock(0)
    alarms = Alarms(clock, 30, 10, 20)
    clock.attach(alarms)
    clock.advance(25)
    assert alarms.rang == [10, 15, 20]
    assert clock.time() == 25
    clock.advance(minutes=1)
    assert alarms.rang == [10, 15, 20, 30]
    assert clock.time() == 85


def test_units_and_duration_strings_add_up():
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=timezone.utc))
    clock.advance("1h", days=2, minutes=3, seconds=4)
    clock.advance(timedelta(seconds=6))
    assert clock.now() == datetime(2030, 1, 3, 1, 3, 10, tzinfo=timezone.utc)


def test_time_never_goes_back_and_naive_starts_are_refused():
    with pytest.raises(ValueError, match="cannot go back"):
        FakeClock(0).advance(seconds=-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))
