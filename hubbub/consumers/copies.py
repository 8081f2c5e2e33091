"""Retry and dead-letter copies: published with confirms, the original acked after.

A handler thread that decides to retry or dead-letter an event publishes a
copy (into the delay ladder aimed at its subscriber's queue, or to the
dead-letter exchange) and moves on; the copy's confirm (on the publisher's
I/O thread) reports back, and only then is the original acked. A copy the
broker refuses for lack of permission will not pass by itself: the worker
stops with the grant that fixes it. A copy that fails for another reason
releases its event after a backoff (:func:`release_delay`), never in a
tight redelivery loop that would burn its delivery limit in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hubbub.connection import user_of, vhost_of
from hubbub.consumers.handling import Outcome, copy_destination
from hubbub.errors import BrokerConnectionError, PublishError
from hubbub.message import Delivery, new_outbound
from hubbub.producers.publisher import Publisher
from hubbub.topology import delay, permissions
from hubbub.topology.names import HubNames
from hubbub.transport.errors import CopyTargetError

#: Wait before releasing an event whose copy failed (doubling per failure in a row).
COPY_RETRY_FIRST, COPY_RETRY_CAP = 1.0, 30.0


def copy_targets(names: HubNames) -> list[str]:
    """Every exchange a consumer publishes copies to: dead-letters, delivery, ladder."""
    ladder = [names.level(level) for level in reversed(range(delay.LEVELS))]
    return [names.dead_letter_exchange, names.delivery, *ladder]


def release_delay(failures: int) -> float:
    """Seconds to hold an event whose copy failed ``failures`` times in a row (1 or more)."""
    return min(COPY_RETRY_CAP, COPY_RETRY_FIRST * 2.0 ** min(failures - 1, 10))


def is_refusal(error: BaseException) -> bool:
    """True when a failed copy was refused for lack of permission (not a passing fault).

    The publisher reports a channel the broker closed with its reply text,
    which for a permission refusal starts with ``ACCESS_REFUSED``.
    """
    return "ACCESS_REFUSED" in str(error)


class Copies:
    """Publishes one worker's copies; knows the grant to name when they are refused."""

    def __init__(
        self, names: HubNames, publisher: Publisher, *, url: str, subscribers: Sequence[str]
    ) -> None:
        self.names = names
        self.publisher = publisher
        self._url = url
        self._subscribers = list(subscribers)

    def send(
        self,
        subscriber: str,
        delivery: Delivery,
        outcome: Outcome,
        done: Callable[[BaseException | None], None],
    ) -> None:
        """Publish ``outcome``'s copy of ``delivery``; ``done(error)`` runs on its confirm.

        ``done`` runs on the publisher's I/O thread, or at once on this
        thread when the copy could not even be sent.
        """
        exchange, key = copy_destination(self.names, subscriber, outcome)
        copy = delivery.message.republished(outcome.headers)
        try:
            future = self.publisher.send(new_outbound(exchange, key, copy, False))
        except (PublishError, BrokerConnectionError) as exc:
            done(exc)
            return
        future.add_done_callback(lambda confirmed: done(confirmed.exception()))

    def refusal(self, exchanges: list[str]) -> str:
        """One line: which exchanges the user may not write to, and the grant that fixes it."""
        user = user_of(self._url)
        grant = permissions.consumer(self.names, self._subscribers)
        shown = ", ".join(repr(x) for x in exchanges[:3])
        more = f" and {len(exchanges) - 3} more" if len(exchanges) > 3 else ""
        return (
            f"user {user!r} may not write to exchange {shown}{more} (ACCESS_REFUSED), where "
            "this consumer publishes retries and dead-letters; grant the consumer's "
            f"permissions (docs/operations.md, Least permissions): "
            f"{grant.command(user, vhost_of(self._url))}"
        )

    def refused(self, subscriber: str, outcome: Outcome) -> str:
        """The reason to stop when ``outcome``'s copy was refused for lack of permission."""
        exchange, _ = copy_destination(self.names, subscriber, outcome)
        return f"cannot retry or dead-letter: {self.refusal([exchange])}"

    def unusable(self, error: CopyTargetError) -> CopyTargetError:
        """``error`` from a transport's preflight, worded with the fix for this hub."""
        missing, refused = error.missing, error.refused
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            message = (
                f"exchange {missing[0]!r}{more} of hub {self.names.hub!r} does not exist: "
                "run 'hubbub topology apply' first"
            )
        else:
            message = self.refusal(refused)
        return CopyTargetError(message, missing=missing, refused=refused)
