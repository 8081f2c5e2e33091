"""Run one delivery through its handler and decide its fate (no broker I/O).

:func:`handle` runs on a handler thread, :func:`ahandle` (``async def``
handlers) in a task on an event loop; both decide alike. The result is an :class:`Outcome` that the
connection's I/O thread carries out: ack, or publish a copy (retry or
dead-letter) and ack once the copy is confirmed, or release the delivery
back to the queue.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Literal

from hubbub import envelope
from hubbub.consumers import failure
from hubbub.consumers.retry import MALFORMED, NOT_AWAITED, decide
from hubbub.errors import AsyncHandlerError, MalformedMessageError, Retry
from hubbub.fastinit import builder
from hubbub.logs import event_fields
from hubbub.message import Delivery
from hubbub.topology import delay
from hubbub.topology.model import Subscriber
from hubbub.topology.names import HubNames

if TYPE_CHECKING:
    from hubbub.codecs import Codecs

log = logging.getLogger("hubbub.consumers")

Handler = Callable[[envelope.Event], Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Literal["ack", "retry", "dead-letter", "release"]
    delay: float = 0.0
    headers: dict[str, Any] | None = None
    topic: str = ""
    event_id: str = ""
    attempt: int = 1
    error: str = ""


ACK = Outcome("ack")
RELEASE = Outcome("release")

#: Positional, cheap constructor for the per-delivery path (:mod:`hubbub.fastinit`).
_outcome = builder(Outcome)


def handle(
    subscriber: Subscriber,
    queue: str,
    handler: Handler,
    delivery: Delivery,
    rng: random.Random | None = None,
    *,
    codecs: Codecs | None = None,
    awaiter: Callable[[Any], Any] | None = None,
) -> Outcome:
    """Decode ``delivery``, run ``handler`` on it and say what to do with it.

    ``handler`` comes with its consume middlewares compiled in
    (:func:`hubbub.middleware.consuming`): they run here, on this thread,
    and what they raise is decided like what the handler raises. The body
    is decoded by ``codecs`` (default: JSON alone).

    A plain def that returns an awaitable (a coroutine, a future) has not
    done its work yet: ``awaiter`` runs it to the end on an event loop and
    its outcome is the handler's. Without an awaiter (nothing to run it on)
    the event is dead-lettered at once, never acked unrun.
    """
    event = _decoded(subscriber, queue, delivery, codecs)
    if type(event) is Outcome:
        return event
    assert isinstance(event, envelope.Event)
    token = envelope.current_event.set(event)
    try:
        result = handler(event)
        # The hot path: None costs one comparison, any other value ~50 ns (the
        # __await__ probe) before the exact but ~6x dearer inspect.isawaitable.
        if (
            result is not None
            and (hasattr(result, "__await__") or type(result) is GeneratorType)
            and inspect.isawaitable(result)
        ):
            if awaiter is None:
                return _not_awaited(subscriber, queue, delivery, event, result)
            awaiter(result)
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, none escapes
        return _failure(subscriber, queue, delivery, event, exc, rng)
    finally:
        envelope.current_event.reset(token)
    return _outcome("ack", 0.0, None, event.topic, event.id, event.attempt, "")


async def ahandle(
    subscriber: Subscriber,
    queue: str,
    handler: Handler,
    delivery: Delivery,
    rng: random.Random | None = None,
    *,
    codecs: Codecs | None = None,
) -> Outcome:
    """:func:`handle` for an ``async def`` handler, in a task on an event loop.

    Everything is decided as for a plain handler. A ``CancelledError`` is
    the task's own cancellation (its time limit, a stop) and propagates
    (the caller owns the delivery's fate then), unless the handler's code
    raised it without the task being cancelled (an inner operation it
    awaited was cancelled): that is a failure like any other.
    """
    event = _decoded(subscriber, queue, delivery, codecs)
    if type(event) is Outcome:
        return event
    assert isinstance(event, envelope.Event)
    token = envelope.current_event.set(event)
    try:
        result = handler(event)
        if result is not None and inspect.isawaitable(result):
            await result
    except asyncio.CancelledError as exc:
        if _cancelled():
            raise
        return _failure(subscriber, queue, delivery, event, exc, rng)
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, none escapes
        return _failure(subscriber, queue, delivery, event, exc, rng)
    finally:
        envelope.current_event.reset(token)
    return _outcome("ack", 0.0, None, event.topic, event.id, event.attempt, "")


def _cancelled() -> bool:
    """True when the running task itself was cancelled (3.10 cannot tell: assume so)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling is None or cancelling() > 0


def _decoded(
    subscriber: Subscriber, queue: str, delivery: Delivery, codecs: Codecs | None
) -> envelope.Event | Outcome:
    """The delivery's event, or the dead-letter outcome of a malformed message."""
    message = delivery.message
    try:
        return envelope.decode(
            delivery.routing_key,
            message,
            subscriber=subscriber.name,
            redelivered=delivery.redelivered,
            codecs=codecs,
            subscribed=subscriber.topics,
        )
    except MalformedMessageError as exc:
        topic = envelope.topic_of(delivery.routing_key, message.headers)
        log.warning(
            "dead-lettering malformed message on %s: %s",
            queue,
            exc,
            extra=event_fields(message.message_id or "", topic, subscriber.name, 1),
        )
        return _failed(subscriber, queue, delivery, exc, MALFORMED, topic, 1, "")


def _failure(
    subscriber: Subscriber,
    queue: str,
    delivery: Delivery,
    event: envelope.Event,
    exc: BaseException,
    rng: random.Random | None,
) -> Outcome:
    """The outcome of a handler that raised ``exc``: a retry copy or a dead-letter."""
    decision = decide(subscriber.retry, exc, event.attempt, rng)
    if decision.action == "retry":
        _log_retry(subscriber, event, exc, decision.delay)
        headers_ = _record(subscriber, queue, delivery, exc, "retrying", event.topic, event.attempt)
        headers_[envelope.ATTEMPT] = event.attempt + 1
        return Outcome(
            "retry",
            decision.delay,
            headers_,
            event.topic,
            event.id,
            event.attempt,
            failure.exception_name(failure.reported(exc)),
        )
    log.warning(
        "event %s (%s) dead-lettered by %s after %d attempt(s) (%s): %r",
        event.id,
        event.topic,
        subscriber.name,
        event.attempt,
        decision.reason,
        exc,
        extra=event_fields(event.id, event.topic, subscriber.name, event.attempt),
    )
    return _failed(
        subscriber, queue, delivery, exc, decision.reason, event.topic, event.attempt, event.id
    )


def _log_retry(
    subscriber: Subscriber, event: envelope.Event, exc: BaseException, delay: float
) -> None:
    """A failure is a WARNING; a handler's deliberate ``raise Retry(...)`` is INFO."""
    fields = event_fields(event.id, event.topic, subscriber.name, event.attempt)
    if isinstance(exc, Retry):
        log.info(
            "event %s (%s): %s asked for a retry on attempt %d, retrying in %.1fs: %s",
            event.id,
            event.topic,
            subscriber.name,
            event.attempt,
            delay,
            exc,
            extra=fields,
        )
        return
    log.warning(
        "event %s (%s) failed on attempt %d in %s, retrying in %.1fs: %r",
        event.id,
        event.topic,
        event.attempt,
        subscriber.name,
        delay,
        exc,
        extra=fields,
    )


def _not_awaited(
    subscriber: Subscriber,
    queue: str,
    delivery: Delivery,
    event: envelope.Event,
    result: Any,
) -> Outcome:
    """Dead-letter an event whose handler returned ``result``, an awaitable it never ran."""
    if inspect.iscoroutine(result):
        try:  # an un-run coroutine: no "was never awaited" warning, nothing left pending
            result.close()
        except Exception:  # a started one may run its cleanup, which may raise
            log.debug("closing the coroutine of %s raised", subscriber.name, exc_info=True)
    name = getattr(result, "__qualname__", None)
    what = f"{type(result).__name__} {name}" if isinstance(name, str) else type(result).__name__
    exc = AsyncHandlerError(
        f"the handler of {subscriber.name} ({subscriber.handler}) returned {what} "
        "where nothing could await it, so the event did not run: make the handler an "
        "async def, which the consumer runs on its event loop"
    )
    log.error(
        "event %s (%s) dead-lettered by %s: %s",
        event.id,
        event.topic,
        subscriber.name,
        exc,
        extra=event_fields(event.id, event.topic, subscriber.name, event.attempt),
    )
    return _failed(
        subscriber, queue, delivery, exc, NOT_AWAITED, event.topic, event.attempt, event.id
    )


def _failed(
    subscriber: Subscriber,
    queue: str,
    delivery: Delivery,
    exc: BaseException,
    reason: str,
    topic: str,
    attempt: int,
    event_id: str,
) -> Outcome:
    headers = _record(subscriber, queue, delivery, exc, reason, topic, attempt)
    name = failure.exception_name(failure.reported(exc))
    return Outcome("dead-letter", 0.0, headers, topic, event_id, attempt, name)


def _record(
    subscriber: Subscriber,
    queue: str,
    delivery: Delivery,
    exc: BaseException,
    reason: str,
    topic: str,
    attempt: int,
) -> dict[str, Any]:
    return failure.record(
        delivery.message.headers,
        exc,
        reason=reason,
        topic=topic,
        attempt=attempt,
        subscriber=subscriber.name,
        queue=queue,
        exchange=delivery.exchange,
        routing_key=delivery.routing_key,
    )


def copy_destination(names: HubNames, subscriber: str, outcome: Outcome) -> tuple[str, str]:
    """Exchange and routing key of an outcome's copy.

    A retry goes into the delay ladder aimed at ``subscriber``'s queue alone
    (other subscribers never see it); a dead-letter goes to its own DLQ.
    The in-memory hub calls this too, so both route copies alike.
    """
    if outcome.action == "retry":
        seconds = delay.whole_seconds(outcome.delay)
        return delay.entry_exchange(names, seconds), delay.queue_key(seconds, subscriber)
    return names.dead_letter_exchange, subscriber


def timed_out(
    subscriber: Subscriber,
    queue: str,
    delivery: Delivery,
    error: BaseException,
    stack: str = "",
    rng: random.Random | None = None,
    *,
    codecs: Codecs | None = None,
) -> Outcome:
    """The outcome of a delivery whose handler ran past its time limit.

    The same decision and failure record as a handler that raised
    ``error``: retried by the subscriber's policy, or dead-lettered (at once
    when ``dont_retry`` names the error's type). ``stack``, where the handler
    was stuck, stands in for the traceback the record would otherwise lack.
    Called off the handler thread (by the watchdog), so it logs nothing.
    """
    event = envelope.decode(
        delivery.routing_key,
        delivery.message,
        subscriber=subscriber.name,
        redelivered=delivery.redelivered,
        codecs=codecs,
    )
    decision = decide(subscriber.retry, error, event.attempt, rng)
    reason = "retrying" if decision.action == "retry" else decision.reason
    headers = _record(subscriber, queue, delivery, error, reason, event.topic, event.attempt)
    if stack:
        headers[failure.TRACEBACK] = stack[-failure.MAX_TRACEBACK :]
    if decision.action == "retry":
        headers[envelope.ATTEMPT] = event.attempt + 1
    name = failure.exception_name(error)
    return Outcome(
        decision.action, decision.delay, headers, event.topic, event.id, event.attempt, name
    )
