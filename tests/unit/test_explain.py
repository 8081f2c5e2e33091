"""``topology plan`` in plain words: what a change of the file means for each subscriber."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hubbub.topology.explain import NO_RECORD, RESTART, UNKNOWN, explain, from_broker
from hubbub.topology.layout import Binding, layout
from hubbub.topology.loader import from_mapping, loads
from hubbub.topology.masking import UNKNOWN as UNKNOWN_TYPE
from hubbub.topology.masking import Recorded, Visibility, digest
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


def test_topic_patterns_replaced_or_covered_are_not_a_loss():
    """``user.*, billing.#`` becoming ``user.#`` used to read "will no longer receive user.*
    and billing.#": alarming, while user.# still covers user.*."""
    old = topology(**{"notify-sales": {"topics": ["user.*", "billing.#"]}})
    replaced = topology(**{"notify-sales": {"topics": ["user.#"]}})
    assert explain(old, replaced, Observed()) == [
        "notify-sales will receive user.# instead of user.* and billing.#"
    ]
    wider = topology(**{"notify-sales": {"topics": ["user.*", "user.#", "billing.#"]}})
    assert explain(wider, replaced, Observed()) == [
        "notify-sales will no longer receive billing.#",
        "notify-sales no longer lists user.*, which its other topics cover: "
        "it receives the same events",
    ]
    assert explain(wider, old, Observed()) == ["notify-sales will no longer receive user.#"]


def test_several_topics_are_listed_in_one_sentence():
    new = topology(**{"welcome-email": {"topics": ["user.signed_up", "a.b", "c.#", "d.*"]}})
    assert explain(topology(), new, Observed()) == [
        "welcome-email will also receive a.b, c.# and d.*"
    ]


def test_a_new_subscriber_and_a_delayed_new_one():
    new = topology(
        **{
            "audit-email": {"handler": "m:audit", "topics": ["email.#"]},
            "follow-up": {"handler": "m:follow", "topics": ["user.signed_up"], "delay": "2h"},
        }
    )
    assert explain(topology(), new, Observed()) == [
        "new subscriber audit-email will receive email.#",
        "new subscriber follow-up will receive user.signed_up, "
        "each event 2h after it was published",
    ]


def test_a_new_subscriber_of_a_built_in_action_says_what_it_does():
    """A reader of the file wants to know what the new line does, not only what it receives."""
    crm = {"url": "https://hooks.slack.com/services/T000/B000/XXXXSECRET"}
    new = topology(
        **{
            "audit": {"handler": "log", "topics": ["email.#"]},
            "crm": {"handler": "webhook", "topics": ["billing.#"], "settings": crm},
            "sales": {
                "handler": "republish",
                "topics": ["user.signed_up"],
                "settings": {"topic": "sales.lead", "delay": "1h"},
            },
            "pair": {"handler": "republish", "topics": ["a.b"], "settings": {"topic": ["c", "d"]}},
        }
    )
    assert explain(topology(), new, Observed()) == [
        "new subscriber audit will receive email.#: it logs each event",
        "new subscriber crm will receive billing.#: it POSTs each event to https://hooks.slack.com/…",
        "new subscriber sales will receive user.signed_up: it republishes each event as "
        "sales.lead, 1h later",
        "new subscriber pair will receive a.b: it republishes each event as c and d",
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


def test_a_subscriber_made_idempotent_and_back_and_a_new_idempotent_one():
    made = topology(**{"welcome-email": {"idempotent": True}})
    assert explain(topology(), made, Observed()) == [
        "welcome-email becomes idempotent: it skips an event it already handled, redelivered "
        "or replayed (its consumers need an inbox: hubbub consume --inbox)",
        RESTART,
    ]
    assert explain(made, topology(), Observed()) == [
        "welcome-email is no longer idempotent: an event that comes again (redelivered, "
        "replayed) is handled again",
        RESTART,
    ]
    new = topology(audit={"handler": "m:audit", "topics": ["email.#"], "idempotent": True})
    assert explain(topology(), new, Observed()) == [
        "new subscriber audit will receive email.#, each event once even if it comes again "
        "(idempotent: its consumers need an inbox)"
    ]


def test_idempotent_survives_the_record_of_an_apply():
    made = topology(**{"welcome-email": {"idempotent": True}})
    record = decode(encode(Applied(made, at=datetime.now(timezone.utc))))
    assert record is not None and record.topology.subscriber("welcome-email").idempotent


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
        "notify-sales's settings change: url changed (now 'https://crm.example/…'), "
        "threshold removed (was 10)"
    )


def hook(url: str, authorization: str) -> Topology:
    settings = {"url": url, "headers": {"Authorization": authorization}}
    return from_mapping(
        {
            "hub": "events",
            "subscribers": {"crm": {"handler": "webhook", "topics": ["t"], "settings": settings}},
        }
    )


SECRETS = ("OLDTOKEN", "NEWTOKEN", "OLDSECRET", "NEWSECRET", "T000")


def test_plan_names_changed_settings_but_not_a_webhooks_header_values_or_url_path():
    """Plan output goes to CI logs and pull requests: a webhook's headers carry API keys,
    its URL's query or path (Slack, Teams) a token."""
    old = hook("https://crm.example/hook?token=OLDTOKEN", "Bearer OLDSECRET")
    new = hook("https://crm.example:8443/T000/hook?token=NEWTOKEN", "Bearer NEWSECRET")
    said = explain(old, new, None)
    assert said[0] == (
        "crm's settings change: url 'https://crm.example/…' → 'https://crm.example:8443/…', "
        "headers changed (value not shown)"
    )
    assert not any(secret in line for line in said for secret in SECRETS)
    recorded = decode(encode(Applied(old, datetime.now(timezone.utc))))
    assert recorded is not None
    assert explain(recorded.topology, new, None) == said


def test_the_applied_record_keeps_no_settings_value_that_may_be_a_secret():
    """Anyone who may read the vhost's queues reads the record: it keeps digests."""
    at = datetime.now(timezone.utc)
    body = encode(Applied(hook("https://crm.example/hook?token=OLDTOKEN", "Bearer OLDSECRET"), at))
    assert b"OLDTOKEN" not in body and b"OLDSECRET" not in body
    recorded = decode(body)
    assert recorded is not None
    same = hook("https://crm.example/hook?token=OLDTOKEN", "Bearer OLDSECRET")
    assert explain(recorded.topology, same, None) == []


def test_a_key_the_settings_type_marks_secret_is_not_shown():
    secret = Visibility(frozenset({"api_key", "level"}), frozenset({"level"}))
    unknown = topology(**{"welcome-email": {"settings": {"level": "v1", "count": 1, "note": "a"}}})
    new = topology(**{"welcome-email": {"settings": {"level": "v2", "count": 2, "note": "b"}}})
    assert explain(unknown, new, None, visibility=lambda ref: secret)[0] == (
        "welcome-email's settings change: level changed (value not shown), count 1 → 2, "
        "note 'a' → 'b'"
    )
    # a handler that does not import: only numbers and true/false are shown
    assert explain(unknown, new, None, visibility=lambda ref: UNKNOWN_TYPE)[0] == (
        "welcome-email's settings change: level changed (value not shown), count 1 → 2, "
        "note changed (value not shown)"
    )


def test_plan_right_after_apply_says_nothing_changed_for_any_yaml_value():
    """A YAML timestamp, .nan or !!binary read back from the record used to differ from
    the file's value ("when '2026-12-01T10:00:00' → '2026-12-01 10:00:00'") on every plan."""
    text = (
        "hub: h\nsubscribers:\n  s:\n    handler: m:f\n    topics: [t]\n    settings:\n"
        "      start: 2026-12-01\n      when: 2026-12-01 10:00:00\n      nan: .nan\n"
        "      bin: !!binary aGVsbG8=\n      flag: yes\n      nested: {at: [2026-12-01 10:00:00]}\n"
    )
    top = loads(text)
    recorded = decode(encode(Applied(top, datetime.now(timezone.utc), "t.yaml")))
    assert recorded is not None
    assert explain(recorded.topology, loads(text), None) == []
    changed = loads(text.replace("10:00:00]", "11:00:00]"))
    assert explain(recorded.topology, changed, None)[0] == (
        "s's settings change: nested changed (value not shown)"
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
        "its queue is kept with 4 events (once drained, delete it: "
        "rabbitmqctl delete_queue events.notify-sales --if-empty)"
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
        "new subscriber notify-sales will receive user.first_action.* and user.deleted: "
        "it POSTs each event to https://crm.example/…",
        "new subscriber inactivity-reminder will receive user.inactivity_check, "
        "each event 3d after it was published",
    ]


def test_the_record_reads_back_what_was_applied():
    at = datetime(2026, 12, 2, 8, 30, tzinfo=timezone.utc)
    applied = Applied(topology(), at, "topology.yaml")
    back = decode(encode(applied))
    assert back is not None and (back.at, back.file) == (at, "topology.yaml")
    settings = back.topology.subscriber("notify-sales").settings
    assert settings["threshold"] == Recorded(digest(10), "10")
    assert back.topology.subscriber("welcome-email") == topology().subscriber("welcome-email")
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


def test_the_walkthroughs_webhook_tweak_reads_as_docs_topology_md_shows():
    """docs/topology.md, step 6: a webhook's declared, non-secret keys show their values."""
    crm = {"handler": "webhook", "topics": ["billing.invoice.paid"]}
    old = {**crm, "settings": {"url": "https://crm.example/hooks/hubbub", "timeout": "5s"}}
    new = {**crm, "settings": {**old["settings"], "timeout": "10s"}}
    new["settings"]["secret_env"] = "CRM_WEBHOOK_SECRET"
    before = from_mapping({"hub": "events", "subscribers": {"crm-webhook": old}})
    after = from_mapping({"hub": "events", "subscribers": {"crm-webhook": new}})
    recorded = decode(encode(Applied(before, datetime.now(timezone.utc))))
    assert recorded is not None
    assert explain(recorded.topology, after, None)[0] == (
        "crm-webhook's settings change: timeout '5s' → '10s', "
        "secret_env added: 'CRM_WEBHOOK_SECRET'"
    )


def test_prefetch_is_said_in_plain_words():
    new = topology(**{"welcome-email": {"prefetch": 10}})
    assert explain(topology(), new, Observed())[0] == (
        "welcome-email's prefetch (events a consumer takes ahead) changes from 50 to 10"
    )
