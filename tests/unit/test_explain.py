"""``topology plan`` in plain words: what a change of the file means for each subscriber."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hubbub.topology.explain import NO_RECORD, RESTART, UNKNOWN, explain, from_broker
from hubbub.topology.layout import Binding, layout
from hubbub.topology.loader import from_mapping
from hubbub.topology.model import Topology
from hubbub.topology.names import HubNames
from hubbub.topology.plan import Observed, ObservedQueue, plan
from hubbub.topology.record import Applied, decode, encode

NAMES = HubNames("events")


def topology(**changes: dict) -> Topology:
    """The example hub, each subscriber's keys updated by ``changes`` (None removes it)."""
    subscribers = {
        "welcome-email": {"handler": "m:welcome", "topics": ["user.signed_up"]},
        "notify-sales": {
            "handler": "webhook",
            "topics": ["user.first_action.*", "user.deleted"],
            "settings": {"url": "https://crm.example/hook", "threshold": 10},
        },
        "inactivity-reminder": {
            "handler": "m:remind",
            "topics": ["user.inactivity_check"],
            "delay": "3d",
        },
    }
    for name, keys in changes.items():
        if keys is None:
            subscribers.pop(name, None)
        else:
            subscribers[name] = {**subscribers.get(name, {}), **keys}
    return from_mapping({"hub": "events", "subscribers": subscribers})


def waiting(seconds: int, count: int, subscriber: str = "inactivity-reminder") -> Observed:
    return Observed(queues={NAMES.wait_queue(subscriber, seconds): ObservedQueue({}, count)})


def test_nothing_changed_no_sentences():
    assert explain(topology(), topology(), Observed()) == []


def test_topics_added_and_removed():
    new = topology(
        **{
            "welcome-email": {"topics": ["user.signed_up", "billing.invoice.paid"]},
            "notify-sales": {"topics": ["user.first_action.*"]},
        }
    )
    assert explain(topology(), new, Observed()) == [
        "welcome-email will also receive billing.invoice.paid",
        "notify-sales will no longer receive user.deleted",
    ]


def test_several_topics_are_listed_in_one_sentence():
    new = topology(**{"welcome-email": {"topics": ["user.signed_up", "a.b", "c.#", "d.*"]}})
    assert explain(topology(), new, Observed()) == [
        "welcome-email will also receive a.b, c.# and d.*"
    ]


def test_a_new_subscriber_and_a_delayed_new_one():
    new = topology(
        **{
            "audit-email": {"handler": "log", "topics": ["email.#"]},
            "follow-up": {"handler": "log", "topics": ["user.signed_up"], "delay": "2h"},
        }
    )
    assert explain(topology(), new, Observed()) == [
        "new subscriber audit-email will receive email.#",
        "new subscriber follow-up will receive user.signed_up, "
        "each event 2h after it was published",
    ]


def test_a_changed_delay_says_what_the_events_already_waiting_keep():
    new = topology(**{"inactivity-reminder": {"delay": "5d"}})
    sentence = "inactivity-reminder's delay changes from 3d to 5d"
    assert explain(topology(), new, waiting(3 * 86400, 12)) == [
        f"{sentence}; 12 events already waiting keep 3d"
    ]
    assert explain(topology(), new, waiting(3 * 86400, 0)) == [sentence]
    assert explain(topology(), new, None) == [sentence]  # counts unknown: not invented
    # the new wait queue's own events are not "left behind"
    assert explain(topology(), new, waiting(5 * 86400, 4)) == [sentence]


def test_delays_compare_as_the_broker_holds_them_whole_seconds_rounded_up():
    was = topology(**{"inactivity-reminder": {"delay": "2s"}})
    now = topology(**{"inactivity-reminder": {"delay": 1.5}})
    assert explain(was, now, waiting(2, 3)) == []


def test_a_delay_added_and_removed():
    added = topology(**{"welcome-email": {"delay": "2d"}})
    assert explain(topology(), added, Observed()) == [
        "welcome-email will now wait 2d before each event"
    ]
    gone = topology(**{"inactivity-reminder": {"delay": None}})
    assert explain(topology(), gone, waiting(3 * 86400, 1)) == [
        "inactivity-reminder will no longer wait: it receives new events at once; "
        "1 event already waiting keeps 3d"
    ]


def test_settings_changes_name_each_key():
    new = topology(
        **{
            "notify-sales": {
                "settings": {"url": "https://crm.example/hook", "threshold": 20, "template": "v2"}
            }
        }
    )
    assert explain(topology(), new, Observed()) == [
        "notify-sales's settings change: threshold 10 → 20, template added: 'v2'",
        RESTART,
    ]
    fewer = topology(**{"notify-sales": {"settings": {"url": "https://crm.example/other"}}})
    assert explain(topology(), fewer, Observed())[0] == (
        "notify-sales's settings change: url 'https://crm.example/hook' → "
        "'https://crm.example/other', threshold removed (was 10)"
    )


def test_retry_handler_concurrency_and_time_limit_changes():
    new = topology(
        **{
            "welcome-email": {
                "handler": "log",
                "retry": {"attempts": 3, "backoff": "10s"},
                "concurrency": 4,
                "timeout": "1m",
            }
        }
    )
    assert explain(topology(), new, Observed()) == [
        "welcome-email's handler changes from m:welcome to log",
        "welcome-email's retry policy changes: attempts 5 → 3, backoff 2s → 10s",
        "welcome-email's concurrency (events handled at once) changes from 1 to 4",
        "welcome-email's time limit per event changes from 5m to 1m",
        RESTART,
    ]


def test_a_subscriber_gone_from_the_file_keeps_its_queue():
    new = topology(**{"notify-sales": None})
    held = Observed(queues={NAMES.queue("notify-sales"): ObservedQueue({}, 4)})
    assert explain(topology(), new, held) == [
        "subscriber notify-sales is no longer in the file: it stops receiving events; "
        "its queue is kept with 4 events (delete it by hand once drained)"
    ]
    assert explain(topology(), new, Observed()) == [
        "subscriber notify-sales is no longer in the file: it stops receiving events"
    ]


def broker_view(top: Topology, *, messages: dict[str, int] | None = None) -> Observed:
    """What the broker holds after applying ``top``: its queues and bindings."""
    wanted = layout(top)
    bindings = set(wanted.bindings)
    for sub in top.subscribers:  # a delayed subscriber's topics go to its wait queue
        if sub.delay:
            wait = NAMES.wait_queue(sub.name, int(sub.delay))
            for topic in sub.topics:
                bindings.discard(Binding(NAMES.exchange, NAMES.queue(sub.name), topic))
                bindings.add(Binding(NAMES.exchange, wait, topic))
    queues = {q.name: ObservedQueue(q.args, (messages or {}).get(q.name, 0)) for q in wanted.queues}
    for sub in top.subscribers:
        if sub.delay:
            wait = NAMES.wait_queue(sub.name, int(sub.delay))
            queues[wait] = ObservedQueue({}, (messages or {}).get(wait, 0))
    return Observed(queues=queues, bindings=frozenset(bindings))


def test_without_a_record_topics_and_delays_come_from_the_broker():
    seen = from_broker(NAMES, broker_view(topology()))
    assert {name: (s.topics, s.delay) for name, s in seen.items()} == {
        "welcome-email": (("user.signed_up",), None),
        "notify-sales": (("user.deleted", "user.first_action.*"), None),
        "inactivity-reminder": (("user.inactivity_check",), 3 * 86400.0),
    }
    wait = NAMES.wait_queue("inactivity-reminder", 3 * 86400)
    observed = broker_view(topology(), messages={wait: 12})
    new = topology(
        **{
            "inactivity-reminder": {"delay": "5d"},
            "notify-sales": {"settings": {"threshold": 99}},  # not on the broker: not shown
            "welcome-email": {"topics": ["user.signed_up", "billing.invoice.paid"]},
        }
    )
    assert explain(None, new, observed) == [
        NO_RECORD,
        "welcome-email will also receive billing.invoice.paid",
        "inactivity-reminder's delay changes from 3d to 5d; 12 events already waiting keep 3d",
    ]


def test_without_a_record_or_the_broker_view_nothing_is_guessed():
    assert explain(None, topology(), None) == [UNKNOWN]


def test_without_a_record_on_a_broker_without_the_hub_every_subscriber_is_new():
    assert explain(None, topology(), Observed()) == [
        "new subscriber welcome-email will receive user.signed_up",
        "new subscriber notify-sales will receive user.first_action.* and user.deleted",
        "new subscriber inactivity-reminder will receive user.inactivity_check, "
        "each event 3d after it was published",
    ]


def test_the_record_reads_back_what_was_applied():
    at = datetime(2026, 12, 2, 8, 30, tzinfo=timezone.utc)
    applied = Applied(topology(), at, "topology.yaml")
    back = decode(encode(applied))
    assert back == applied
    assert back is not None and back.describe() == (
        "last applied 2026-12-02 08:30 UTC from topology.yaml"
    )
    assert explain(back.topology, topology(), Observed()) == []


@pytest.mark.parametrize("body", [b"", b"not json", b'{"format": 99}', b'{"format": 1}', b"[]"])
def test_a_record_this_hubbub_cannot_read_is_no_record(body):
    assert decode(body) is None


def test_plan_leaves_the_record_alone():
    top = topology()
    observed = broker_view(top)
    record = Observed(
        queues={**observed.queues, NAMES.applied: ObservedQueue({}, 1)},
        bindings=observed.bindings | {Binding(NAMES.applied, NAMES.applied, "")},
    )
    assert NAMES.owns(NAMES.applied)
    changes = plan(layout(top), record).changes
    assert not [c for c in changes if NAMES.applied in c.name]
