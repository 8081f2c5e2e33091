"""One error tree for everything a hubbub user can hit.

The broker clients' exceptions are translated at the edge (``raise ... from exc``)
so callers catch :class:`HubbubError` alone, and every message says what
failed, where, and what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence


class HubbubError(Exception):
    """Base class of every error hubbub raises on purpose."""


class ConfigurationError(HubbubError):
    """A setting (URL, option, environment variable) is invalid."""


class TopologyError(HubbubError):
    """A topology is invalid; ``problems`` lists every problem found at once.

    ``lines`` gives, for each problem, the line of the file it is about
    (None: no place in the file); the message then reads ``file:line: problem``,
    as compilers write it, so editors and terminals can jump there.
    """

    def __init__(
        self,
        problems: list[str],
        *,
        source: str = "topology",
        lines: Sequence[int | None] | None = None,
    ) -> None:
        self.problems = list(problems)
        self.source = source
        self.lines: list[int | None] = list(lines or [None] * len(self.problems))
        self.lines += [None] * (len(self.problems) - len(self.lines))
        where = [
            f"{source}:{line}: {p}" if line else f"{source}: {p}"
            for p, line in zip(self.problems, self.lines, strict=False)
        ]
        if len(where) == 1:  # one problem: one line (the CLI's error format)
            super().__init__(where[0])
            return
        listed = "\n".join(f"  - {w.removeprefix(source + ': ')}" for w in where)
        super().__init__(f"{source}: {len(self.problems)} problems:\n{listed}")


class BrokerConnectionError(HubbubError):
    """The broker cannot be reached, refused the credentials or the vhost."""


class DeclarationError(HubbubError):
    """The broker refused to declare part of the topology."""


class PublishError(HubbubError):
    """The broker did not confirm a published event; it may not have been stored.

    ``failed`` lists the ids of the events not confirmed (of a batch, or the
    one of ``publish``): confirmed ones are never in it, so publishing
    exactly these again misses nothing. An event whose confirm was lost with
    the connection may be stored all the same: republishing may duplicate
    those (consumers deduplicate by id), never lose one.
    """

    def __init__(self, message: str, *, failed: list[str] | None = None) -> None:
        super().__init__(message)
        self.failed: list[str] = failed or []


class PublishConnectionError(PublishError, BrokerConnectionError):
    """Publishing found the broker unreachable: nothing of the events in ``failed`` was sent.

    Both a PublishError (its ids are in ``failed``) and a
    BrokerConnectionError, so either ``except`` catches it.
    """


class DelayTooLongError(PublishError):
    """A delay exceeds what the TTL ladder can hold (2**28-1 seconds)."""


class HandlerImportError(HubbubError):
    """A subscriber's handler reference does not import."""


class AsyncHandlerError(HubbubError):
    """A handler returned an awaitable where nothing could await it: the event did not run."""


class MalformedMessageError(HubbubError):
    """A delivered message cannot be decoded into an event (bad JSON, content type)."""


class Retry(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a handler to ask for another attempt, optionally after ``after`` seconds.

    It counts as an attempt: once the subscriber's attempts are used up the
    event is dead-lettered like any other failure.
    """

    def __init__(self, reason: str = "retry requested", *, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class DontRetry(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised (by a handler or a consume middleware) to dead-letter the event at once.

    ``raise DontRetry("why") from exc``: the subscriber's retry policy is
    not consulted, the event is dead-lettered with reason "not retryable",
    and its failure record names the cause (``exc``) when there is one.
    """
