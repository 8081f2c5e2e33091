"""The binary TTL ladder, proven without a broker.

A small router follows the layout's own bindings with the broker's topic
matching (``patterns.matches``), exchange-to-exchange bindings and alternate
exchanges, and "expires" a level queue by dead-lettering into the exchange
its arguments name. So these tests check the layout that ``apply`` declares,
not a copy of its rules.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from hubbub import envelope
from hubbub.errors import ConfigurationError, DelayTooLongError
from hubbub.topology import delay, loader, patterns
from hubbub.topology.layout import Layout, layout
from hubbub.topology.names import HubNames

HUB = "shop"
NAMES = HubNames(HUB)


def _topology(subscribers: dict[str, list[str]]) -> Layout:
    return layout(
        loader.from_mapping(
            {
                "hub": HUB,
                "subscribers": {n: {"handler": "m:f", "topics": t} for n, t in subscribers.items()},
            }
        )
    )


LAYOUT = _topology(
    {"welcome": ["user.signed_up"], "audit": ["#"], "sales": ["user.*", "billing.#"]}
)


@dataclass
class Trip:
    """Where a message went: level queues in the order visited, and final queues."""

    levels: list[int] = field(default_factory=list)
    waited: int = 0
    delivered_to: set[str] = field(default_factory=set)


class Broker:
    """Routes keys through a layout the way RabbitMQ does (topic, e2e, AE, DLX on TTL)."""

    def __init__(self, plan: Layout) -> None:
        self.plan = plan
        self.exchanges = {e.name: e for e in plan.exchanges}
        self.queues = {q.name: q for q in plan.queues}

    def route(self, exchange: str, key: str) -> set[str]:
        """Queues one publish to ``exchange`` with ``key`` lands in."""
        found: set[str] = set()
        matched = False
        for b in self.plan.bindings:
            if b.source != exchange or not self._matches(exchange, b.routing_key, key):
                continue
            matched = True
            if b.destination_type == "exchange":
                found |= self.route(b.destination, key)
            else:
                found.add(b.destination)
        if not matched or not found:
            alternate = self.exchanges[exchange].args.get("alternate-exchange")
            if alternate and not found:
                found |= self.route(alternate, key)
        return found

    def _matches(self, exchange: str, pattern: str, key: str) -> bool:
        if self.exchanges[exchange].type == "fanout":
            return True
        return patterns.matches(pattern, key)

    def trip(self, exchange: str, key: str) -> Trip:
        """Follow a message until it rests in queues that are not ladder levels."""
        trip = Trip()
        pending = self.route(exchange, key)
        while pending:
            queue = pending.pop()
            level = _level_of(queue)
            if level is None:
                trip.delivered_to.add(queue)
                continue
            args = self.queues[queue].args
            trip.levels.append(level)
            trip.waited += args["x-message-ttl"] // 1000
            pending |= self.route(args["x-dead-letter-exchange"], key)
        return trip


def _level_of(queue: str) -> int | None:
    prefix = f"hubbub.v1.{HUB}.delay.L"
    return int(queue[len(prefix) :]) if queue.startswith(prefix) else None


BROKER = Broker(LAYOUT)
ENTRY = NAMES.level(delay.LEVELS - 1)


def _delays() -> list[int]:
    rng = random.Random(28)
    chosen = set(range(70))
    chosen |= {2**b for b in range(delay.LEVELS)} | {2**b - 1 for b in range(1, delay.LEVELS + 1)}
    chosen |= {2**b + 1 for b in range(delay.LEVELS - 1)}
    chosen |= {rng.randrange(delay.MAX_DELAY_SECONDS + 1) for _ in range(300)}
    return sorted(chosen)


@pytest.mark.parametrize("seconds", [0, 1, 5, 90, 86_400, delay.MAX_DELAY_SECONDS])
def test_bits_are_28_words_most_significant_first(seconds):
    words = delay.bits(seconds).split(".")
    assert len(words) == delay.LEVELS
    assert set(words) <= {"0", "1"}
    assert int("".join(words), 2) == seconds


def test_an_event_visits_exactly_the_levels_of_its_set_bits_and_waits_its_delay():
    for seconds in _delays():
        trip = BROKER.trip(ENTRY, delay.event_key(seconds, "user.signed_up"))
        set_bits = [b for b in reversed(range(delay.LEVELS)) if seconds >> b & 1]
        assert trip.levels == set_bits, seconds
        assert trip.waited == seconds
        assert trip.delivered_to == {"shop.welcome", "shop.audit", "shop.sales"}, seconds


def test_entering_at_the_highest_set_bit_takes_the_same_trip_as_entering_at_the_top():
    for seconds in _delays():
        for key in (delay.event_key(seconds, "user.signed_up"), delay.queue_key(seconds, "audit")):
            entry = delay.entry_exchange(NAMES, seconds)
            assert BROKER.trip(entry, key) == BROKER.trip(ENTRY, key), seconds
    assert delay.entry_exchange(NAMES, 0) == NAMES.delivery
    assert delay.entry_exchange(NAMES, 1) == NAMES.level(0)
    assert delay.entry_exchange(NAMES, 90) == NAMES.level(6)
    assert delay.entry_exchange(NAMES, delay.MAX_DELAY_SECONDS) == NAMES.level(27)


def test_the_ladder_delivers_to_the_subscribers_matching_at_delivery():
    for seconds in (0, 3, 77):
        trip = BROKER.trip(ENTRY, delay.event_key(seconds, "billing.invoice.paid"))
        assert trip.delivered_to == {"shop.audit", "shop.sales"}
    later = Broker(_topology({"welcome": ["user.signed_up"], "late": ["user.signed_up"]}))
    trip = later.trip(ENTRY, delay.event_key(5, "user.signed_up"))
    assert trip.delivered_to == {"shop.welcome", "shop.late"}


def test_a_delayed_event_nobody_matches_is_parked_in_unrouted_not_left_in_a_level():
    lonely = Broker(_topology({"welcome": ["user.signed_up"]}))
    for seconds in (0, 1, 6, 1025):
        trip = lonely.trip(ENTRY, delay.event_key(seconds, "order.placed"))
        assert trip.delivered_to == {NAMES.unrouted}
        assert trip.waited == seconds


def test_a_retry_copy_reaches_only_the_named_subscriber_even_past_a_catch_all():
    for seconds in (0, 2, 600):
        for name in ("welcome", "audit", "sales"):
            trip = BROKER.trip(ENTRY, delay.queue_key(seconds, name))
            assert trip.delivered_to == {f"shop.{name}"}
            assert trip.waited == seconds


def test_a_key_that_is_not_a_ladder_key_is_parked_not_dropped():
    assert BROKER.route(ENTRY, "user.signed_up") == {NAMES.unrouted}


def test_level_queues_are_quorum_ttl_queues_dead_lettering_at_least_once_downwards():
    queues = {q.name: q.args for q in LAYOUT.queues}
    for level in range(delay.LEVELS):
        args = queues[NAMES.level(level)]
        assert args["x-queue-type"] == "quorum"
        assert args["x-message-ttl"] == 1000 * 2**level
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"
        below = NAMES.level(level - 1) if level else NAMES.delivery
        assert args["x-dead-letter-exchange"] == below
    exchanges = {e.name: e.args for e in LAYOUT.exchanges}
    assert exchanges[NAMES.delivery]["alternate-exchange"] == NAMES.unrouted
    assert all(exchanges[NAMES.level(n)]["alternate-exchange"] == NAMES.unrouted for n in range(28))


def test_ladder_names_are_versioned():
    assert NAMES.level(7) == "hubbub.v1.shop.delay.L07"
    assert NAMES.delivery == "hubbub.v1.shop.delivery"


@pytest.mark.parametrize(
    ("given", "seconds"),
    [(0, 0), (0.001, 1), (1, 1), (1.5, 2), (59.0001, 60), (-30, 0), (2**28 - 1, 2**28 - 1)],
)
def test_delays_round_up_to_whole_seconds_and_the_past_means_now(given, seconds):
    assert delay.whole_seconds(given) == seconds


@pytest.mark.parametrize("given", [delay.MAX_DELAY_SECONDS + 0.5, 2**28, 10**12])
def test_a_delay_past_the_maximum_is_refused_with_the_limit_in_the_message(given):
    with pytest.raises(DelayTooLongError, match="268435455 s"):
        delay.whole_seconds(given)


def test_marks_strip_back_to_the_topic_or_subscriber():
    assert delay.strip(delay.event_key(9, "user.first_action.photo")) == (
        "e",
        "user.first_action.photo",
    )
    assert delay.strip(delay.queue_key(9, "welcome")) == ("q", "welcome")
    assert delay.strip("user.signed_up") is None  # noqa: B005 - delay.strip, not str.strip


def test_a_topic_too_long_for_the_ladder_prefix_is_refused():
    longest = "t" * (patterns.MAX_KEY_BYTES - delay.KEY_OVERHEAD)
    assert len(delay.event_key(1, longest)) == patterns.MAX_KEY_BYTES
    with pytest.raises(ConfigurationError, match="too long to be delayed"):
        delay.event_key(1, longest + "t")


def test_a_delivered_delayed_event_shows_its_origin_and_delay_but_no_ladder_trace():
    props = envelope.message(
        "user.signed_up",
        b'{"user_id": 7}',
        message_id="e-1",
        headers={"tenant": "acme"},
        delay_seconds=90,
    )
    assert props.headers is not None
    due_ms = props.headers[envelope.DUE_MS]
    headers = dict(props.headers)
    headers["x-death"] = [{"queue": NAMES.level(0), "reason": "expired", "count": 1}]
    headers["x-first-death-queue"] = NAMES.level(6)
    headers["x-last-death-exchange"] = NAMES.level(0)

    event = envelope.decode(delay.event_key(90, "user.signed_up"), props.with_headers(headers))

    assert (event.topic, event.id, event.data) == ("user.signed_up", "e-1", {"user_id": 7})
    assert event.headers == {"tenant": "acme"}
    assert event.delay == 90
    assert event.due == datetime.fromtimestamp(due_ms / 1000, timezone.utc)
    assert event.attempt == 1


def test_an_undelayed_event_has_no_delay_metadata():
    props = envelope.message("user.signed_up", b"{}", message_id="e-2")
    event = envelope.decode("user.signed_up", props)
    assert (event.delay, event.due) == (None, None)


def test_the_delay_header_is_an_integer_for_amqp():
    props = envelope.message("a.b", b"{}", message_id="m", delay_seconds=3)
    assert props.headers is not None
    assert isinstance(props.headers[envelope.DELAY_MS], int)
    assert isinstance(props.headers[envelope.DUE_MS], int)
