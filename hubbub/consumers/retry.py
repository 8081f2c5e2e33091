"""What to do with a failed attempt: retry after a backoff, or dead-letter (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from hubbub.errors import DontRetry, Retry
from hubbub.topology.delay import MAX_DELAY_SECONDS
from hubbub.topology.model import RetryPolicy

#: Failure-record reasons, as they appear in ``hubbub-failure-reason``.
EXHAUSTED = "attempts exhausted"
NOT_RETRYABLE = "not retryable"
MALFORMED = "malformed message"
#: The handler returned a coroutine (or other awaitable) instead of doing its work.
NOT_AWAITED = "handler returned an awaitable"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Literal["retry", "dead-letter"]
    delay: float = 0.0
    reason: str = ""


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before ``attempt`` (2 for the first retry).

    Exponential (``backoff * 2**(attempt-2)``), capped at ``max_backoff``;
    with jitter, "equal jitter": half fixed, half random, so retries of
    events that failed together spread out but never come back at once.
    """
    doublings = min(max(0, attempt - 2), 64)  # 2**64 s is past any cap; no float overflow
    base: float = min(policy.backoff * 2**doublings, policy.max_backoff)
    if not policy.jitter:
        return base
    spread: float = (rng or random).uniform(0, base / 2)
    return base / 2 + spread


def decide(
    policy: RetryPolicy, error: BaseException, attempt: int, rng: random.Random | None = None
) -> Decision:
    """The fate of an event whose ``attempt``-th handling raised ``error``.

    :class:`~hubbub.errors.DontRetry` (from a handler or a middleware)
    dead-letters at once, as a type the policy's ``dont_retry`` names does.
    """
    if isinstance(error, DontRetry) or (
        not isinstance(error, Retry) and is_not_retryable(policy, error)
    ):
        return Decision("dead-letter", reason=NOT_RETRYABLE)
    if attempt >= policy.attempts:
        return Decision("dead-letter", reason=EXHAUSTED)
    if isinstance(error, Retry) and error.after is not None:
        # Capped at the ladder's longest delay: a copy the ladder refused
        # would leave the event neither retried nor acked.
        return Decision("retry", delay=min(max(0.0, error.after), MAX_DELAY_SECONDS))
    return Decision("retry", delay=backoff(policy, attempt + 1, rng))


def is_not_retryable(policy: RetryPolicy, error: BaseException) -> bool:
    """True when ``error`` is (a subclass of) a type the policy names in ``dont_retry``."""
    if not policy.dont_retry:
        return False
    names = set(policy.dont_retry)
    return any(
        cls.__name__ in names or f"{cls.__module__}.{cls.__qualname__}" in names
        for cls in type(error).__mro__
    )
