"""The failure record a dead-lettered or retried event carries in its headers (pure).

What Spring AMQP and MassTransit record (NOTES.md): exception type, message
and stack trace, where the event came from, attempt count, first and last
failure time, host. The traceback is truncated well below ``frame_max``
because headers cannot span frames.
"""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Mapping
from typing import Any

from hubbub.envelope import ATTEMPT, FAILURE_PREFIX, TOPIC, aimed_copy_headers, topics_of
from hubbub.errors import DontRetry

#: Characters of traceback kept (its end: where it was raised).
MAX_TRACEBACK = 4000
#: Characters of exception message kept.
MAX_MESSAGE = 1000

REASON = FAILURE_PREFIX + "reason"
EXCEPTION = FAILURE_PREFIX + "exception"
MESSAGE = FAILURE_PREFIX + "message"
TRACEBACK = FAILURE_PREFIX + "traceback"
SUBSCRIBER = FAILURE_PREFIX + "subscriber"
QUEUE = FAILURE_PREFIX + "queue"
EXCHANGE = FAILURE_PREFIX + "exchange"
ROUTING_KEY = FAILURE_PREFIX + "routing-key"
HOST = FAILURE_PREFIX + "host"
FIRST_TIME = FAILURE_PREFIX + "first-time-ms"
LAST_TIME = FAILURE_PREFIX + "last-time-ms"

_HOST = socket.gethostname()


def exception_name(error: BaseException) -> str:
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def reported(error: BaseException) -> BaseException:
    """The exception a failure record names: a DontRetry's cause when it has one.

    ``raise DontRetry(...) from exc`` only changes the decision; whoever
    reads the dead letter wants to see ``exc``.
    """
    if isinstance(error, DontRetry) and error.__cause__ is not None:
        return error.__cause__
    return error


def record(
    headers: Mapping[str, Any] | None,
    error: BaseException,
    *,
    reason: str,
    topic: str,
    attempt: int,
    subscriber: str,
    queue: str,
    exchange: str,
    routing_key: str,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """``headers`` of a copy aimed at one queue, plus this failure's record.

    The broker's death headers and ``CC`` go, the event's topics stay
    (:func:`hubbub.envelope.aimed_copy_headers`). ``attempt`` is the number
    of attempts made so far. A record already in ``headers`` (from an
    earlier attempt) keeps its first-failure time and origin; the rest
    describe this failure.
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    error = reported(error)
    result = aimed_copy_headers(headers, topics_of(topic, headers or {}))
    first = result.get(FIRST_TIME)
    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    result.update(
        {
            TOPIC: topic,
            ATTEMPT: attempt,
            REASON: reason,
            EXCEPTION: exception_name(error),
            MESSAGE: str(error)[:MAX_MESSAGE],
            TRACEBACK: tb[-MAX_TRACEBACK:],
            SUBSCRIBER: subscriber,
            QUEUE: queue,
            HOST: _HOST,
            FIRST_TIME: first if isinstance(first, int) else now_ms,
            LAST_TIME: now_ms,
        }
    )
    result.setdefault(EXCHANGE, exchange)
    result.setdefault(ROUTING_KEY, routing_key)
    return result
