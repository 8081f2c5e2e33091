"""A real hub under test: a :class:`~hubbub.Hub` on a real broker, with its consumer
running in a thread and the same assertion helpers as the in-memory hub.

:class:`LiveHub` applies its topology, runs a :class:`~hubbub.consumers.worker.Worker`
for every subscriber in a background thread, records what its publisher sent
and every handler attempt, and reads dead-lettered and unrouted events back
from their queues without consuming them. It is what the ``hubbub_live_hub``
fixture hands out, and the real side of the contract suite.

"Idle" on a real broker: :meth:`LiveHub.run_until_idle` drops a sentinel at
the back of every subscriber's queue and waits until each one came out and
nothing else is in flight, again and again until a round saw no event at all
(so events that handlers published are covered too). So the hub's own
consumer must be the only one on its queues: another consumer would get
sentinels, and events this hub never sees. Delayed events and
retries still in the delay ladder are not waited for, as in memory; wait for
them with :meth:`LiveHub.run_until`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hubbub import current, envelope
from hubbub.admin import Admin
from hubbub.admin.browse import Browser
from hubbub.codecs import Codecs
from hubbub.consumers.worker import Worker
from hubbub.envelope import Event
from hubbub.errors import HubbubError
from hubbub.hub import Hub
from hubbub.inbox import InboxStore, MemoryStore
from hubbub.message import Message, Outbound
from hubbub.middleware import Middleware, NextAsyncHandler, NextHandler, consuming
from hubbub.producers.publisher import Publisher
from hubbub.testing.broker import delete_hub
from hubbub.testing.clock import WallClock
from hubbub.testing.records import (
    SENTINEL,
    Assertions,
    Recorder,
    RecordingTransport,
    Watch,
    replay_selection,
)
from hubbub.topology.model import Topology
from hubbub.transport.rabbitmq import RabbitMQTransport

log = logging.getLogger(__name__)

#: Seconds :meth:`LiveHub.run_until` waits beyond ``within`` (broker and thread latency).
GRACE = 2.0
#: Seconds to wait for the consumer to start, and for a hub to fall idle.
START_TIMEOUT, IDLE_TIMEOUT = 15.0, 30.0


class LiveHub(Hub, Assertions):
    """A hub on a real broker with its consumer in a thread (see the module docstring)."""

    def __init__(
        self,
        name: str | None = None,
        *,
        topology: Topology | str | Path | None = None,
        url: str | None = None,
        middleware: Sequence[Any] = (),
        codecs: Codecs | None = None,
        inbox: InboxStore | None = None,
        **worker_options: Any,
    ) -> None:
        """``worker_options`` go to the :class:`Worker` (``concurrency``, ``prefetch``...);
        ``middleware`` and ``codecs`` as :class:`~hubbub.Hub`'s; ``inbox``: where
        ``idempotent`` subscribers record what they handled (default: a
        :class:`~hubbub.inbox.MemoryStore` of its own)."""
        self._recorder = Recorder(codecs)
        self._rabbitmq = RabbitMQTransport(url)
        recording = RecordingTransport(self._rabbitmq, self._recorder)
        super().__init__(
            name,
            topology=topology,
            url=url,
            transport=recording,
            middleware=middleware,
            codecs=codecs,
            inbox=inbox if inbox is not None else MemoryStore(),
        )
        self._observer = Watch(self._recorder)
        self._worker_options = worker_options
        self._worker: Worker | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []
        self._applied: Topology | None = None
        #: Wall time, read like the in-memory hub's fake clock (``clock.time()``).
        self.clock = WallClock()

    # -- the Hub API ---------------------------------------------------------

    @property
    def publisher(self) -> Publisher:
        """The hub's publisher (recording), once the topology is applied."""
        self._apply_once()
        return super().publisher

    def close(self) -> None:
        """Stop the consumer and close the publisher (the broker objects stay)."""
        self.stop()
        super().close()

    # -- running -------------------------------------------------------------

    def start(self) -> None:
        """Apply the topology and start consuming every subscriber (idempotent)."""
        if self._worker is not None:
            return
        self._apply_once()
        if not self.topology.subscribers:
            return  # nothing to consume: a hub that only publishes
        # The hub's middlewares here, inside the worker's sentinel filter (below): they never
        # see the harness's own events.
        handlers = {
            name: self._recorder.spy(
                name, current.through(consuming(self.middleware, h), lambda: self)
            )
            for name, h in self.handlers().items()
        }
        options = {"name": f"hubbub test {self.name}", **self._worker_options}
        worker = Worker(
            self.topology,
            handlers,
            url=self.url,
            observer=self._observer,
            codecs=self.codecs,
            inbox=self.inbox,
            # Outermost: the harness's sentinels reach no middleware, inbox or handler.
            middleware=[_SkipSentinels()],
            **options,
        )
        self._worker = worker
        self._thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
        self._thread.start()
        if not worker.consuming.wait(START_TIMEOUT):
            raise HubbubError(f"the consumer of hub {self.name!r} did not start: {self._errors}")

    def stop(self) -> None:
        """Stop the consumer gracefully (events in hand are finished and acked)."""
        worker, thread = self._worker, self._thread
        self._worker = self._thread = None
        if worker is not None and thread is not None:
            worker.stop()
            thread.join(START_TIMEOUT * 2)

    def delete(self) -> None:
        """Stop, close, and delete every exchange and queue of this hub (test clean-up)."""
        self.close()
        if self._applied is not None:
            delete_hub(self.publisher_url, self._applied)
            self._applied = None

    @property
    def publisher_url(self) -> str:
        return self._rabbitmq.urls[0]

    def run_until_idle(self, timeout: float = IDLE_TIMEOUT) -> None:
        """Wait until every subscriber's queue is drained and nothing is in flight."""
        self.start()
        deadline = time.monotonic() + timeout
        while True:
            before = self._observer.started_count()
            published = len(self._recorder.published())
            count = self._send_sentinels()
            self._wait(partial(self._observer.quiet, count), deadline, "to fall idle")
            # An event a handler published in this round may sit behind another
            # queue's sentinel, not delivered yet: then go round once more.
            if (
                self._observer.started_count() - before == count
                and len(self._recorder.published()) == published
            ):
                return

    async def arun_until_idle(self, timeout: float = IDLE_TIMEOUT) -> None:
        """:meth:`run_until_idle` for async tests (waits on a thread, the loop runs on)."""
        await asyncio.to_thread(self.run_until_idle, timeout)

    def run_until(self, done: Callable[[], bool], *, within: float) -> None:
        """Wait until ``done()``: up to ``within`` seconds plus :data:`GRACE`.

        Raises AssertionError when it is still false (the in-memory hub has
        the same method on its fake clock).
        """
        self.start()
        self._wait(done, time.monotonic() + within + GRACE, f"within {within:g} s")

    def replay(self, subscriber: str, ids: Iterable[str] | None = None) -> int:
        """Send dead-lettered events back to ``subscriber`` alone, attempt count reset.

        This is ``hubbub dlq replay`` (:meth:`hubbub.admin.Admin.replay`): the
        originals leave the dead-letter queue only once their copies are confirmed.
        """
        selection = replay_selection(ids)
        if selection is None:
            return 0
        self._apply_once()
        admin = Admin(self.topology, url=",".join(self._rabbitmq.urls))
        return admin.replay(subscriber, selection).moved

    # -- inside ----------------------------------------------------------------

    def _apply_once(self) -> None:
        topology = self.topology
        if self._applied is not topology:
            self.apply()
            self._applied = topology

    def _run(self, worker: Worker) -> None:
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001 - reported by start() and _wait()
            log.error("consumer of hub %r failed: %s", self.name, exc)
            self._errors.append(exc)

    def _send_sentinels(self) -> int:
        publisher = self.publisher  # the recorder leaves sentinels out
        names = self.topology.names
        futures = [
            publisher.send(
                Outbound(
                    "",
                    names.queue(sub.name),
                    Message(
                        envelope.dumps(None),
                        content_type=envelope.JSON,
                        message_id=envelope.new_id(),
                        headers={envelope.TOPIC: SENTINEL},
                    ),
                )
            )
            for sub in self.topology.subscribers
        ]
        for future in futures:
            publisher.wait(future)
        return len(futures)

    def _wait(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        while not done():
            if self._errors:
                raise HubbubError(f"the consumer of hub {self.name!r} failed: {self._errors[0]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not done {what}; attempts so far: {self.attempts()}")
            time.sleep(0.01)

    def _messages(self, queue: str) -> list[tuple[str, Message]]:
        """What ``queue`` holds, read by the admin's browser (which leaves it as it was)."""
        self._apply_once()
        name = f"hubbub test browse {self.name}"
        with Browser(self._rabbitmq.urls, queue, name=name) as browser:
            return [(m.routing_key, m.message) for m in browser.messages()]


class _SkipSentinels(Middleware):
    """Ends the harness's own sentinel events (acked) before anything of the app runs."""

    def consume(self, event: Event, call_next: NextHandler) -> Any:
        return None if event.topic == SENTINEL else call_next(event)

    async def aconsume(self, event: Event, call_next: NextAsyncHandler) -> Any:
        return None if event.topic == SENTINEL else await call_next(event)
