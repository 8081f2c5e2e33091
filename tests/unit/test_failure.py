"""The failure record a dead-lettered event carries in its headers (pure)."""

from __future__ import annotations

import socket

import pytest

from hubbub import envelope
from hubbub.consumers import failure


class PaymentDeclined(Exception):
    pass


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as exc:  # captured with its traceback
        return exc


def record(headers=None, error=None, **overrides):
    kwargs = {
        "reason": "attempts exhausted",
        "topic": "user.signed_up",
        "attempt": 1,
        "subscriber": "welcome",
        "queue": "events.welcome",
        "exchange": "events",
        "routing_key": "user.signed_up",
        "now_ms": 1_700_000_000_000,
    }
    kwargs.update(overrides)
    return failure.record(headers, error or raised(KeyError("email")), **kwargs)


def test_the_record_says_what_failed_where_and_when():
    headers = record({"tenant": "t1"}, raised(PaymentDeclined("card expired")), attempt=3)
    assert headers["tenant"] == "t1"
    assert headers[failure.EXCEPTION] == f"{__name__}.PaymentDeclined"
    assert headers[failure.MESSAGE] == "card expired"
    assert headers[failure.TRACEBACK].startswith("Traceback (most recent call last):")
    assert "PaymentDeclined: card expired" in headers[failure.TRACEBACK]
    assert headers[failure.REASON] == "attempts exhausted"
    assert headers[envelope.TOPIC] == "user.signed_up"
    assert headers[envelope.ATTEMPT] == 3
    assert headers[failure.SUBSCRIBER] == "welcome"
    assert headers[failure.QUEUE] == "events.welcome"
    assert headers[failure.EXCHANGE] == "events"
    assert headers[failure.ROUTING_KEY] == "user.signed_up"
    assert headers[failure.HOST] == socket.gethostname()
    assert headers[failure.FIRST_TIME] == headers[failure.LAST_TIME] == 1_700_000_000_000


def test_builtin_exceptions_are_named_without_their_module():
    assert failure.exception_name(KeyError()) == "KeyError"
    assert failure.exception_name(PaymentDeclined()) == f"{__name__}.PaymentDeclined"


def test_message_and_traceback_are_truncated_keeping_the_end_of_the_traceback():
    def deep(n: int) -> None:
        if n == 0:
            raise ValueError("x" * 5000)
        deep(n - 1)

    try:
        deep(60)
    except ValueError as exc:
        error = exc
    headers = record(error=error)
    assert headers[failure.MESSAGE] == "x" * failure.MAX_MESSAGE
    assert len(headers[failure.TRACEBACK]) == failure.MAX_TRACEBACK
    assert headers[failure.TRACEBACK].endswith("x" * 100 + "\n")  # where it was raised


def test_a_later_failure_keeps_the_first_failure_time_and_origin():
    first = record(now_ms=1_000, exchange="events", routing_key="user.signed_up")
    later = record(
        first,
        raised(RuntimeError("again")),
        attempt=2,
        now_ms=9_000,
        exchange="hubbub.v1.events.delivery",
        routing_key="0.0.1.q.welcome",
    )
    assert later[failure.FIRST_TIME] == 1_000
    assert later[failure.LAST_TIME] == 9_000
    assert later[failure.EXCEPTION] == "RuntimeError"
    assert later[failure.MESSAGE] == "again"
    assert later[envelope.ATTEMPT] == 2
    assert later[failure.EXCHANGE] == "events"  # the event's origin, not the retry path
    assert later[failure.ROUTING_KEY] == "user.signed_up"


def test_broker_death_headers_are_stripped():
    headers = record({"x-death": [{"count": 1}], "x-first-death-queue": "q", "x-request-id": "r"})
    assert "x-death" not in headers
    assert "x-first-death-queue" not in headers
    assert headers["x-request-id"] == "r"


@pytest.mark.parametrize("value", [None, "1000", 1.5])
def test_a_malformed_first_time_is_replaced(value):
    headers = record({failure.FIRST_TIME: value}, now_ms=5)
    assert headers[failure.FIRST_TIME] == 5


def test_every_header_value_can_travel_in_an_amqp_table():
    """pika cannot encode floats in headers (NOTES.md): ints and strings only."""
    headers = record({"tenant": "t1"})
    assert all(isinstance(v, int | str) for v in headers.values())
