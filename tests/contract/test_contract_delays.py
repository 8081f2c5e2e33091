"""Contract: delayed events arrive after their delay, in the order they fall due."""

from __future__ import annotations

from datetime import timedelta

#: How late a delayed event may arrive on the real broker (the ladder delivered
#: within 60 ms on this machine; the rest is margin for a loaded 2-core CI box).
LATE = 1.5


def test_delayed_events_arrive_in_the_order_they_fall_due(make_hub):
    hub = make_hub()
    arrived = []

    @hub.subscriber("timer", topics=["tick.*"])
    def timer(event):
        arrived.append((event.data["n"], hub.clock.time(), event.delay))

    # The consumer runs first (the live hub starts its worker; in memory nothing is
    # queued): what is timed is the delays, not the consumer's start, which includes
    # its check of the copy targets and takes more than LATE on a loaded machine.
    hub.run_until_idle()
    start = hub.clock.time()
    hub.publish("tick.a", {"n": 3}, delay=3)
    hub.publish("tick.b", {"n": 1}, delay="1s")
    hub.publish("tick.c", {"n": 2}, delay=timedelta(seconds=2))
    hub.publish("tick.d", {"n": 0})
    hub.run_until(lambda: len(arrived) == 4, within=4)

    assert [n for n, _, _ in arrived] == [0, 1, 2, 3]
    assert [d for _, _, d in arrived] == [None, 1.0, 2.0, 3.0]
    for n, at, _ in arrived:
        assert n <= at - start <= n + LATE, (n, at - start)
    assert hub.unrouted() == []


def test_a_delayed_event_reaches_every_matching_subscriber_once(make_hub):
    hub = make_hub()
    hub.subscriber("one", topics=["user.*", "user.#"])(lambda event: None)
    hub.subscriber("two", topics=["#"])(lambda event: None)
    hub.subscriber("other", topics=["billing.#"])(lambda event: None)
    event_id = hub.publish("user.inactive", {"user_id": 7}, delay=1)
    hub.run_until(lambda: len(hub.handled("one")) + len(hub.handled("two")) == 2, within=2)
    hub.run_until_idle()
    for name in ("one", "two"):
        (event,) = hub.handled(name)
        assert (event.id, event.topic, event.data, event.delay) == (
            event_id,
            "user.inactive",
            {"user_id": 7},
            1.0,
        )
    assert hub.handled("other") == []
