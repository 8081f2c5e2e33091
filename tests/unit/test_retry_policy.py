"""Retry schedule, retry decisions and the failure record, without a broker."""

from __future__ import annotations

import random

import pytest

from hubbub import envelope
from hubbub.consumers import failure
from hubbub.consumers.handling import handle
from hubbub.consumers.retry import EXHAUSTED, NOT_RETRYABLE, backoff, decide
from hubbub.errors import Retry, TopologyError
from hubbub.message import Delivery, Message
from hubbub.topology import delay, loader
from hubbub.topology.model import RetryPolicy, Subscriber


class Boom(Exception):
    pass


class BadInput(ValueError):
    pass


def policy(**kw) -> RetryPolicy:
    return RetryPolicy(**{"jitter": False, **kw})


# -- backoff ---------------------------------------------------------------


def test_backoff_doubles_from_the_first_retry_and_stops_at_the_cap():
    p = policy(backoff=2, max_backoff=60)
    assert [backoff(p, n) for n in range(2, 9)] == [2, 4, 8, 16, 32, 60, 60]


def test_backoff_of_a_huge_attempt_is_the_cap_not_an_overflow():
    assert backoff(policy(backoff=1, max_backoff=600), 10_000) == 600


def test_jittered_backoff_stays_within_half_and_all_of_the_wait_and_spreads():
    p = RetryPolicy(backoff=2, max_backoff=600, jitter=True)
    rng = random.Random(3)
    for attempt in range(2, 12):
        base = min(2 * 2 ** (attempt - 2), 600)
        waits = [backoff(p, attempt, rng) for _ in range(300)]
        assert all(base / 2 <= w <= base for w in waits), attempt
        assert max(waits) - min(waits) > base / 4, "jitter should spread retries out"


def test_the_defaults_are_the_documented_ones():
    p = RetryPolicy()
    assert (p.attempts, p.backoff, p.max_backoff, p.jitter, p.dont_retry) == (5, 2, 600, True, ())


def test_retry_settings_read_like_the_topology_file():
    topology = loader.from_mapping(
        {
            "hub": "h",
            "subscribers": {
                "s": {
                    "handler": "m:f",
                    "topics": ["a"],
                    "retry": {
                        "attempts": 7,
                        "backoff": "3s",
                        "max_backoff": "10m",
                        "jitter": False,
                        "dont_retry": ["KeyError"],
                    },
                }
            },
        }
    )
    assert topology.subscribers[0].retry == RetryPolicy(
        attempts=7, backoff=3, max_backoff=600, jitter=False, dont_retry=("KeyError",)
    )


def test_a_backoff_longer_than_the_ladder_can_hold_is_a_topology_error():
    with pytest.raises(TopologyError, match="max_backoff"):
        loader.from_mapping(
            {
                "hub": "h",
                "subscribers": {
                    "s": {"handler": "m:f", "topics": ["a"], "retry": {"max_backoff": "9000d"}}
                },
            }
        )


# -- decide ----------------------------------------------------------------


def test_a_failure_with_attempts_left_retries_after_the_next_backoff():
    p = policy(attempts=4, backoff=1, max_backoff=10)
    assert [decide(p, Boom(), n).delay for n in (1, 2, 3)] == [1, 2, 4]
    assert {decide(p, Boom(), n).action for n in (1, 2, 3)} == {"retry"}


def test_the_last_attempt_dead_letters_as_exhausted():
    p = policy(attempts=3)
    assert decide(p, Boom(), 3).action == "dead-letter"
    assert decide(p, Boom(), 3).reason == EXHAUSTED
    assert decide(p, Boom(), 99).reason == EXHAUSTED
    assert decide(policy(attempts=1), Boom(), 1).reason == EXHAUSTED


@pytest.mark.parametrize(
    "names",
    [("ValueError",), (f"{__name__}.BadInput",), ("BadInput",)],
)
def test_dont_retry_types_and_their_subclasses_dead_letter_at_once(names):
    decision = decide(policy(attempts=5, dont_retry=names), BadInput("no"), 1)
    assert (decision.action, decision.reason) == ("dead-letter", NOT_RETRYABLE)
    assert decide(policy(attempts=5, dont_retry=names), Boom(), 1).action == "retry"


def test_retry_after_overrides_the_backoff_and_still_counts_as_an_attempt():
    p = policy(attempts=3, backoff=100, dont_retry=("Exception",))
    assert decide(p, Retry(after=7), 1).delay == 7
    assert decide(p, Retry(), 1).delay == 100  # no after: the policy's backoff
    assert decide(p, Retry(after=7), 3).reason == EXHAUSTED
    assert decide(p, Retry(after=-5), 1).delay == 0
    assert decide(p, Retry(after=1e12), 1).delay == delay.MAX_DELAY_SECONDS


# -- handle + failure record -------------------------------------------------

SUB = Subscriber(
    name="mailer",
    handler="m:f",
    topics=("user.*",),
    retry=policy(attempts=3, backoff=1, dont_retry=("KeyError",)),
)


def _delivery(attempt: int | None = None, extra: dict | None = None) -> Delivery:
    headers = {"tenant": "acme"}
    if attempt is not None:
        headers[envelope.ATTEMPT] = attempt
    headers.update(extra or {})
    message = envelope.message(
        "user.signed_up", b'{"user_id": 1}', message_id="ev-1", headers=headers
    )
    return Delivery(7, "shop", "user.signed_up", False, message)


def _raise(exc: BaseException):
    def handler(event):
        raise exc

    return handler


def test_a_failed_attempt_becomes_a_retry_copy_with_the_next_attempt_and_no_broker_headers():
    death = {"x-death": [{"queue": "q"}], "x-first-death-queue": "q", "x-delivery-count": 2}
    outcome = handle(SUB, "shop.mailer", _raise(Boom("down")), _delivery(extra=death))
    assert outcome.action == "retry"
    assert outcome.delay == 1
    headers = outcome.headers
    assert headers[envelope.ATTEMPT] == 2
    assert headers[envelope.TOPIC] == "user.signed_up"
    assert headers["tenant"] == "acme"
    assert not [k for k in headers if k.startswith("x-")]
    assert headers[failure.EXCEPTION] == f"{__name__}.Boom"


def test_the_dead_letter_record_after_the_last_attempt_is_complete():
    first = handle(SUB, "shop.mailer", _raise(Boom("one")), _delivery())
    first_ms = first.headers[failure.FIRST_TIME]
    props = Message(
        b"{}",
        content_type=envelope.JSON,
        message_id="ev-1",
        headers={**first.headers, failure.FIRST_TIME: first_ms - 5000, envelope.ATTEMPT: 3},
    )
    retried = Delivery(9, "hubbub.v1.shop.delivery", delay.queue_key(1, "mailer"), False, props)
    last = handle(SUB, "shop.mailer", _raise(Boom("three")), retried)
    assert last.action == "dead-letter"
    record = last.headers
    assert record[envelope.ATTEMPT] == 3
    assert record[failure.REASON] == EXHAUSTED
    assert record[failure.FIRST_TIME] == first_ms - 5000
    assert record[failure.LAST_TIME] >= first_ms
    assert record[failure.EXCEPTION] == f"{__name__}.Boom"
    assert record[failure.MESSAGE] == "three"
    assert "Boom: three" in record[failure.TRACEBACK]
    assert record[failure.SUBSCRIBER] == "mailer"
    assert record[failure.QUEUE] == "shop.mailer"
    assert (record[failure.EXCHANGE], record[failure.ROUTING_KEY]) == ("shop", "user.signed_up")
    assert record[envelope.TOPIC] == "user.signed_up"
    assert record[failure.HOST]


def test_a_not_retryable_failure_is_dead_lettered_on_its_first_attempt():
    outcome = handle(SUB, "shop.mailer", _raise(KeyError("email")), _delivery())
    assert outcome.action == "dead-letter"
    assert outcome.headers[failure.REASON] == NOT_RETRYABLE
    assert outcome.headers[envelope.ATTEMPT] == 1


def test_a_handler_asking_for_a_retry_gets_its_wait():
    outcome = handle(SUB, "shop.mailer", _raise(Retry("later", after=30)), _delivery(attempt=2))
    assert (outcome.action, outcome.delay, outcome.headers[envelope.ATTEMPT]) == ("retry", 30, 3)


def test_the_traceback_is_cut_below_the_frame_size():
    deep = Boom("x" * 50_000)
    outcome = handle(SUB, "shop.mailer", _raise(deep), _delivery())
    assert len(outcome.headers[failure.TRACEBACK]) <= failure.MAX_TRACEBACK
    assert len(outcome.headers[failure.MESSAGE]) <= failure.MAX_MESSAGE
