"""Move chosen parked events back where they can be handled, losing none.

Guarantee: an event leaves its parking queue only after the broker
confirmed its copy (publisher confirms, ``mandatory`` so a missing queue is
an error rather than a silent drop). Until then the original is held
unacked; if the process dies at any point the broker returns it. So after
an interruption each event is in the parking queue, or in its destination,
or (confirmed but not yet removed) in both, never in neither. Consumers
deduplicate by event id, which the copy keeps.

Copies are pipelined (up to ``window`` unconfirmed) and the originals
removed in the order their copies were confirmed; ``rate`` spaces the copies
out for a consumer that must not be flooded. A copy the broker refuses
stops the replay: what was confirmed so far is removed, the rest stays, and
:class:`ReplayError` says so.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from hubbub.admin import access, history
from hubbub.admin.browse import Browser, HeldMessage
from hubbub.admin.filters import Selection
from hubbub.admin.records import FailedEvent
from hubbub.errors import BrokerConnectionError, HubbubError, PublishError
from hubbub.message import Message, Outbound
from hubbub.producers.publisher import Publisher
from hubbub.topology.permissions import Permissions

#: Copies in flight (unconfirmed) at once.
DEFAULT_WINDOW = 500

OnEvent = Callable[[FailedEvent], None]


class Target(Protocol):
    """Where replayed copies go (see :mod:`hubbub.admin.sources`)."""

    def route(self, event: FailedEvent) -> tuple[str, str] | str: ...

    def describe(self) -> str: ...


@dataclass
class ReplayResult:
    """What a replay did: ``moved`` were removed after their copy was confirmed."""

    target: str
    dry_run: bool
    scanned: int = 0
    matched: int = 0
    moved: int = 0
    ids: list[str] = field(default_factory=list)
    #: Matching events left in place, counted by why (e.g. "no subscriber for x.y").
    skipped: Counter[str] = field(default_factory=Counter)
    truncated: bool = False


class ReplayError(HubbubError):
    """A replay stopped part way; ``result`` says what was moved before it did."""

    def __init__(self, message: str, result: ReplayResult) -> None:
        super().__init__(message)
        self.result = result


def replay(
    browser: Browser,
    publisher: Publisher | None,
    target: Target,
    selection: Selection,
    *,
    subscriber: str | None,
    dry_run: bool = False,
    rate: float | None = None,
    window: int = DEFAULT_WINDOW,
    on_event: OnEvent | None = None,
    grant: Permissions | None = None,
) -> ReplayResult:
    """Copy the events ``selection`` picks out of ``browser``'s queue to ``target``.

    ``on_event`` is called for each event moved (or, with ``dry_run``, that
    would be). ``rate`` is in events per second. A dry run needs no publisher.
    ``grant``: the permissions to suggest if the broker refuses a copy.
    """
    if publisher is None and not dry_run:
        raise ValueError("a replay needs a publisher (only a dry run does not)")
    mover = _Mover(browser, publisher, window, on_event)
    result = mover.result = ReplayResult(target.describe(), dry_run)
    pacer = Pacer(browser.pause, rate)
    try:
        for message, event in browser.events(subscriber):
            result.scanned += 1
            if not selection.matches(event):
                continue
            route = target.route(event)
            if isinstance(route, str):
                result.skipped[route] += 1
                continue
            result.matched += 1
            if dry_run:
                result.ids.append(event.id)
                if on_event is not None:
                    on_event(event)
                continue
            pacer.wait()
            mover.send(message, event, route, _copy(message, event, subscriber))
            if mover.error is not None:
                break
        result.truncated = browser.truncated
    finally:
        mover.settle_all()
    if mover.error is not None:
        refusal = refused_publish(mover.error, target, grant)
        if refusal is not None:
            raise ReplayError(
                f"replay stopped after moving {result.moved} event(s): {refusal} "
                "(the events not moved are still parked)",
                result,
            ) from refusal
        raise ReplayError(
            f"replay stopped after moving {result.moved} event(s) to {result.target}: "
            f"{mover.error} (the events not moved are still parked; run it again)",
            result,
        )
    return result


def refused_publish(
    error: str, target: Target, grant: Permissions | None
) -> access.AccessRefusedError | None:
    """Which permission a copy's publish lacked, when the broker refused it (403)."""
    return access.refused(
        error, permission="write", doing=f"publish to {target.describe()}", grant=grant
    )


def _copy(held: HeldMessage, event: FailedEvent, subscriber: str | None) -> Message:
    if subscriber is None:
        return history.unrouted_message(held.message, event.topics)
    return history.replay_message(held.message, event, now_ms=int(time.time() * 1000))


class _Mover:
    """Pipelines copies and removes each original once its copy is confirmed."""

    def __init__(
        self, browser: Browser, publisher: Publisher | None, window: int, on_event: OnEvent | None
    ) -> None:
        self.browser = browser
        self.publisher = publisher
        self.window = window
        self.on_event = on_event
        self.pending: deque[tuple[HeldMessage, FailedEvent, Future[None]]] = deque()
        self.error: str | None = None
        self.result: ReplayResult

    def send(
        self, message: HeldMessage, event: FailedEvent, route: tuple[str, str], copy: Message
    ) -> None:
        assert self.publisher is not None
        exchange, key = route
        future = self.publisher.send(Outbound(exchange, key, copy, mandatory=True))
        self.pending.append((message, event, future))
        self._settle(block=len(self.pending) >= self.window)

    def settle_all(self) -> None:
        self._settle(block=True)

    def _settle(self, *, block: bool) -> None:
        while self.pending and (block or self.pending[0][2].done()):
            message, event, future = self.pending.popleft()
            assert self.publisher is not None
            try:
                self.publisher.wait(future)
            except (PublishError, BrokerConnectionError) as exc:
                self.error = self.error or f"event {event.id} ({event.topic}): {exc}"
                continue
            self.browser.ack(message)
            self.result.moved += 1
            self.result.ids.append(event.id)
            if self.on_event is not None:
                self.on_event(event)


class Pacer:
    """Spaces calls to :meth:`wait` ``1/rate`` seconds apart (no rate: no wait).

    ``pause(seconds)`` waits while keeping a connection alive (a browser's or
    a session's pump), never a bare sleep.
    """

    def __init__(self, pause: Callable[[float], None], rate: float | None) -> None:
        self.pause = pause
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        delay = self.next_at - time.monotonic()
        if delay > 0:
            self.pause(delay)
        self.next_at = max(self.next_at, time.monotonic()) + self.interval


def parse_rate(text: str) -> float:
    """Events per second in ``10``, ``10/s``, ``600/m`` or ``3600/h``."""
    number, _, unit = text.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}.get(unit.strip().lower())
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if per is None or not value > 0 or value == float("inf"):
        raise ValueError(f"not a rate: {text!r} (write e.g. 10/s, 600/m)")
    return value / per
