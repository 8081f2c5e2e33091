"""Publish events to the hub; a publish returns once the broker confirmed it.

Guarantee: :meth:`Publisher.publish` returns only after the broker's
publisher confirm, which for the hub's durable quorum queues means the event
is stored on a majority of nodes. Any other outcome (nack, channel or
connection lost, no confirm within ``confirm_timeout``) raises
:class:`~hubbub.errors.PublishError`; the event may then be stored or not, so
publish again: consumers deduplicate by ``message_id``, which a retry keeps.
A lost connection is reopened on the next publish. Events no subscriber
matches are not dropped: the hub's alternate exchange parks them in the
``<hub>.unrouted`` queue.

Across a broker restart or a network cut the publisher raises, it does not
retry on its own (a hidden retry loop would block callers for as long as
the outage lasts and hide it): every event in flight when the connection
drops fails with PublishError (stored or not: publish again with the same
id), and while the broker stays unreachable each publish fails fast with
:class:`~hubbub.errors.PublishConnectionError` (a PublishError and a
BrokerConnectionError: nothing was sent). Whatever goes wrong, the
PublishError's ``failed`` lists exactly the ids not confirmed. The first
publish after the broker is back reconnects. With several cluster nodes
listed, each publisher starts on a random one and the next publish after a
lost connection tries the other nodes first (``tests/cluster``). The fault suite
(``tests/fault/test_broker_restart.py``) publishes a stream through a
restart this way and loses nothing.

One publisher is safe to share between threads and between event loops;
all of them pipeline through one connection. Each loop's ``apublish`` calls
are handed over together and their confirms come back together
(:mod:`hubbub.producers.aio`). The connection is its
:class:`~hubbub.transport.base.PublisherTransport`'s (RabbitMQ by default, or
any transport given as ``transport=``): the publisher prepares events,
hands them over as :class:`~hubbub.transport.base.Pending` and waits for
their confirms; it never touches a broker client itself.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from hubbub.codecs import Codecs
from hubbub.connection import resolve_urls
from hubbub.errors import (
    BrokerConnectionError,
    HubbubError,
    PublishConnectionError,
    PublishError,
)
from hubbub.message import Outbound
from hubbub.producers.aio import LoopSender
from hubbub.producers.message import EventMessages, OutgoingEvent, PublishOptions, Topics
from hubbub.topology.names import HubNames
from hubbub.transport import publisher_transport
from hubbub.transport.base import Pending, PublisherTransport
from hubbub.transport.confirms import ConfirmGroup

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Seconds to wait for the broker's confirm of one publish.
DEFAULT_CONFIRM_TIMEOUT = 30.0
#: Events publish_many prepares and hands to the I/O thread at a time.
CHUNK = 250


class Publisher:
    """Confirmed, persistent publishing of events to one hub.

    ``middleware``: their ``publish`` hooks see every event this publisher
    builds (not raw messages given to :meth:`send`); ``codecs``: what each
    topic is encoded with (default JSON). See :mod:`hubbub.middleware` and
    :mod:`hubbub.codecs`. ``clock``: what ``deliver_at`` counts from (epoch
    seconds; the wall clock, or the in-memory hub's fake one).
    """

    def __init__(
        self,
        hub: str,
        *,
        url: str | None = None,
        name: str = "hubbub publisher",
        window: int | None = None,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
        middleware: Sequence[Any] = (),
        codecs: Codecs | None = None,
        transport: PublisherTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.names = HubNames(hub)
        self._events = EventMessages(self.names, codecs=codecs, middleware=middleware, clock=clock)
        self.urls = resolve_urls(url)
        self.confirm_timeout = confirm_timeout
        #: Where the events go (default: RabbitMQ at ``url``, as connection ``name``,
        #: ``window`` unconfirmed messages in flight, default 1000).
        self.transport = transport or publisher_transport(self.urls, name=name, window=window)
        self._senders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopSender] = (
            weakref.WeakKeyDictionary()
        )
        self._senders_lock = threading.Lock()
        self._last_sender: LoopSender | None = None

    # -- events -------------------------------------------------------------

    def publish(self, topic: Topics, data: Any = None, **options: Unpack[PublishOptions]) -> str:
        """Publish one event and wait for the broker's confirm; returns its id.

        ``options``: :class:`~hubbub.producers.message.PublishOptions`
        (``headers``, ``message_id``, ``delay``, ``deliver_at``). Raises
        PublishError (``failed`` holds the id) for anything but a confirm,
        ConfigurationError for a topic or delay that is not valid.
        """
        message_id, message = self._events.one(topic, data, options)
        self._publish_one(message)
        return message_id

    def publish_many(self, events: Iterable[OutgoingEvent]) -> list[str]:
        """Publish many events with their confirms pipelined; waits for all.

        Every event is checked before any is sent (topic, delay, data,
        headers, id), so a bad one raises with nothing published. Anything
        but a confirm for every event raises PublishError, after every
        other one has been confirmed or failed: ``error.failed`` lists
        exactly the ids not confirmed, whatever happened (an unreachable
        broker, a connection lost mid-batch, a timeout). Give the events
        message ids to match those ids to them.
        """
        batch = list(events)
        self._events.check(batch)
        # One group for the batch: confirms are counted, not a Future each (confirms.py).
        group = ConfirmGroup(len(batch))
        sent_some = False
        ids: list[str] = []
        unreachable: BrokerConnectionError | PublishError | None = None
        unsent: PublishError | None = None
        for start in range(0, len(batch), CHUNK):
            prepared = self._prepare(batch[start : start + CHUNK])
            messages = [
                Pending(outbound, group=group, index=i)
                for i, (_, outbound) in enumerate(prepared, start)
            ]
            ids += [message_id for message_id, _ in prepared]
            if unsent is None:
                unreachable = self._try_send_all(messages)
                unsent = None if unreachable is None else PublishError(f"not sent: {unreachable}")
            if unsent is not None:  # the broker is gone: the rest of the batch is not sent
                for message in messages:
                    message.settle(unsent)
            else:
                sent_some = True
            time.sleep(0)  # let the I/O thread publish it now, not after a GIL switch interval
        timed_out = not group.wait(self.confirm_timeout)
        failed = sorted({*group.unsettled(), *group.failed}) if timed_out else group.failed
        if isinstance(unreachable, BrokerConnectionError) and not sent_some:
            raise _unreachable(unreachable, ids) from unreachable
        if failed:
            raise _unconfirmed(ids, failed, group.errors, self._timeout_text(timed_out))
        return ids

    # -- asyncio ------------------------------------------------------------

    async def apublish(
        self, topic: Topics, data: Any = None, **options: Unpack[PublishOptions]
    ) -> str:
        """:meth:`publish` for asyncio: the same confirm guarantee, the loop never blocked.

        Concurrent calls on one loop are handed over together and their
        confirms come back together (:mod:`hubbub.producers.aio`); connecting
        runs in the loop's default executor. Cancelling the caller before
        the I/O thread took the message withdraws it; after that the event
        may or may not be stored, as after a timeout. Errors as :meth:`publish`.
        """
        message_id, message = self._events.one(topic, data, options)
        # This coroutine lives until the confirm, a thousand of them at once for a busy
        # app: each object it keeps (the options dict, an asend coroutine) is one more
        # for the cyclic GC to count and scan. So the dict goes, and asend is inlined.
        del options
        sender = self._sender()
        number, future = sender.submit_one(message)
        try:
            await future
        except asyncio.CancelledError:
            sender.withdraw(number, number + 1)
            raise
        except BrokerConnectionError as exc:
            raise _unreachable(exc, [message_id]) from exc
        except PublishError as exc:
            raise _failing(exc, [message_id]) from exc
        return message_id

    async def apublish_many(self, events: Iterable[OutgoingEvent]) -> list[str]:
        """:meth:`publish_many` for asyncio: confirms pipelined, the loop never blocked.

        The same contract: every event checked first, PublishError listing
        exactly the ids not confirmed (PublishConnectionError with all of
        them when the broker cannot be reached). The batch is handed over in
        one go, with whatever other ``apublish`` calls the loop has queued.
        """
        batch = list(events)
        self._events.check(batch)
        prepared = self._prepare(batch)
        ids = [message_id for message_id, _ in prepared]
        if not prepared:
            return ids
        sender = self._sender()
        first, futures = sender.submit([outbound for _, outbound in prepared])
        try:
            results = await asyncio.gather(*futures, return_exceptions=True)
        except asyncio.CancelledError:
            sender.withdraw(first, first + len(futures))
            raise
        unreachable = results[0]  # the broker could not be reached: nothing was sent
        if isinstance(unreachable, BrokerConnectionError) and all(
            result is unreachable for result in results
        ):
            raise _unreachable(unreachable, ids) from unreachable
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, HubbubError):
                raise result
        errors = {i: r for i, r in enumerate(results) if isinstance(r, BaseException)}
        if errors:
            raise _unconfirmed(ids, sorted(errors), errors, "")
        return ids

    async def asend(self, outbound: Outbound) -> None:
        """:meth:`send` and :meth:`wait` for asyncio: returns once the broker confirmed.

        Raises PublishError for anything but a confirm, BrokerConnectionError
        when the broker cannot be reached (nothing was sent).
        """
        sender = self._sender()
        number, future = sender.submit_one(outbound)
        try:
            await future
        except asyncio.CancelledError:
            sender.withdraw(number, number + 1)
            raise

    def _sender(self) -> LoopSender:
        """The running loop's :class:`~hubbub.producers.aio.LoopSender` (made on first use)."""
        loop = asyncio.get_running_loop()
        sender = self._last_sender
        if sender is not None and sender.loop is loop:
            return sender
        sender = self._senders.get(loop)
        if sender is None:
            with self._senders_lock:  # one per loop, whichever thread asks first
                sender = self._senders.get(loop)
                if sender is None:
                    sender = LoopSender(
                        loop,
                        self.transport,
                        confirm_timeout=self.confirm_timeout,
                        timeout_text=self._timeout_text,
                    )
                    self._senders[loop] = sender
        self._last_sender = sender  # most callers use one loop: skip the weak lookup
        return sender

    async def aclose(self) -> None:
        """:meth:`close` for asyncio (waits for in-flight confirms off the loop)."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def _prepare(self, events: Iterable[OutgoingEvent]) -> list[tuple[str, Outbound]]:
        """Each event's id and message, of events the batch check passed."""
        return self._events.many(events)

    def _publish_one(self, message: Outbound) -> None:
        """Send ``message`` and wait for its confirm; raises PublishError otherwise.

        A group of one, not a Future: its bare lock is the cheapest wake-up
        CPython has, which is what many threads publishing at once pay for
        (confirms.py). The error's ``failed`` holds the message's id.
        """
        group = ConfirmGroup(1)
        ids = [message.message.message_id or ""]
        try:
            self._send_all((Pending(message, group=group),))
        except BrokerConnectionError as exc:
            raise _unreachable(exc, ids) from exc
        except PublishError as exc:
            raise _failing(exc, ids) from exc
        if not group.wait(self.confirm_timeout):
            raise PublishError(self._timeout_text(True), failed=ids)
        if group.errors:
            error = group.errors[0]
            raise _failing(error, ids) from error

    def _try_send_all(
        self, messages: Sequence[Pending]
    ) -> BrokerConnectionError | PublishError | None:
        """:meth:`_send_all`, returning (not raising) why the broker could not be reached."""
        try:
            self._send_all(messages)
        except (BrokerConnectionError, PublishError) as exc:
            return exc
        return None

    def _send_all(self, messages: Sequence[Pending]) -> None:
        """Hand ``messages`` to the transport at once (one lock, one wake-up of its I/O thread).

        Raises BrokerConnectionError (nothing sent) when the broker cannot be reached.
        """
        self.transport.send_many(messages)

    def _timeout_text(self, timed_out: bool = True) -> str:
        """Why confirms did not come: the broker blocking publishers (and why), or silence."""
        if not timed_out:
            return ""
        blocked = self.transport.blocked
        if blocked is not None:
            return _BLOCKED.format(blocked, self.confirm_timeout)
        return _NOT_CONFIRMED.format(self.confirm_timeout)

    # -- raw messages -------------------------------------------------------

    def send(self, outbound: Outbound) -> Future[None]:
        """Publish a prepared message; the future resolves on its confirm."""
        future: Future[None] = Future()
        self.transport.send_many((Pending(outbound, future),))
        return future

    def wait(self, future: Future[None]) -> None:
        """Block until ``future``'s confirm, raising PublishError on any other outcome."""
        try:
            future.result(timeout=self.confirm_timeout)
        except FutureTimeout as exc:
            raise PublishError(self._timeout_text()) from exc

    def close(self) -> None:
        """Wait for in-flight confirms and close the connection."""
        self.transport.close()

    def abort(self) -> None:
        """Close the connection at once, without waiting for confirms (after a failure).

        What a command line does once a publish failed: events still in
        flight fail (may or may not be stored), as on a lost connection.
        """
        self.transport.close(timeout=0)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NOT_CONFIRMED = (
    "the broker did not confirm within {:g} s; "
    "the event may or may not be stored: publish it again with the same id"
)
_BLOCKED = (
    "the broker is blocking publishers ({}: a resource alarm, see "
    "'rabbitmq-diagnostics alarms') and did not confirm within {:g} s; publish again "
    "with the same id once the alarm clears"
)


def _unreachable(exc: BrokerConnectionError, ids: list[str]) -> PublishConnectionError:
    """The broker could not be reached, so none of ``ids`` was sent."""
    if isinstance(exc, PublishConnectionError):
        return PublishConnectionError(str(exc), failed=ids)
    return PublishConnectionError(f"{exc} (nothing was sent)", failed=ids)


def _failing(error: BaseException, ids: list[str]) -> PublishError:
    """``error`` (shared by every message a lost link failed) as a fresh one naming ``ids``."""
    if not isinstance(error, PublishError):
        return PublishError(str(error), failed=list(ids))
    fresh = copy.copy(error)
    fresh.failed = list(ids)
    return fresh


def _unconfirmed(
    ids: list[str], failed: list[int], errors: Mapping[int, BaseException | None], timeout: str
) -> PublishError:
    """The PublishError of a batch whose events at positions ``failed`` were not confirmed."""
    reasons = Counter(str(e) for e in errors.values() if e is not None)
    why = "; ".join(r for r in (timeout, *(r for r, _ in reasons.most_common(2))) if r)
    return PublishError(
        f"{len(failed)} of {len(ids)} events were not confirmed ({why}); publish the ids in "
        "error.failed again (consumers deduplicate by id: one whose confirm was lost may "
        "be stored twice, none is missed)",
        failed=[ids[i] for i in failed],
    )


__all__: Sequence[str] = ["OutgoingEvent", "Publisher"]
