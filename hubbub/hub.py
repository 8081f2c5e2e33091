"""The application's front door: wiring, publishing and consuming for one hub.

A :class:`Hub` holds a topology built from a file, from ``@hub.subscriber``
decorators, or both. When both name a subscriber **the file wins**: its
topics, retry policy and handler are used and the decorator's settings are
ignored (with a warning when they differ), so people who edit the file
always see what runs. Subscribers only in code are added to the file's.

A hub runs on a :class:`~hubbub.transport.base.Transport`: RabbitMQ at
``url`` unless another is given (the test hubs run on the in-memory one, or
on a recording one); its publisher, its workers and ``apply`` all go
through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hubbub import current
from hubbub.codecs import Codecs
from hubbub.consumers.worker import DEFAULT_NAME, Worker, whereabouts
from hubbub.envelope import Event
from hubbub.errors import HubbubError, TopologyError
from hubbub.middleware import check, consuming
from hubbub.producers.message import OutgoingEvent, PublishOptions, Topics, split_topics
from hubbub.producers.publisher import Publisher
from hubbub.topology import loader
from hubbub.topology.model import RetryPolicy, Subscriber, Topology
from hubbub.topology.plan import Plan
from hubbub.topology.references import Passed, handler_problems, resolve_handlers
from hubbub.transport.base import Transport
from hubbub.transport.rabbitmq import RabbitMQTransport

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from hubbub.inbox import InboxStore

log = logging.getLogger("hubbub")

F = TypeVar("F", bound=Callable[[Event], Any])

#: Topics a hub remembers having warned about (no subscriber matches); past
#: this many it forgets them all and may warn again: bounded memory for apps
#: that publish on unbounded topic names.
MAX_WARNED_TOPICS = 1024


class Hub:
    """One hub: its topology, a shared thread-safe publisher, and its consumers.

    ``middleware``: run around every handler and every publish of this hub,
    first one outermost (:mod:`hubbub.middleware`, ``docs/middleware.md``);
    ``codecs``: what events are encoded with and which content types its
    consumers decode (:mod:`hubbub.codecs`; default JSON alone);
    ``inbox``: where its consumers' ``idempotent`` subscribers record the
    events they handled (:mod:`hubbub.inbox`, e.g. ``PostgresStore(dsn)``).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        topology: Topology | str | Path | None = None,
        url: str | None = None,
        replicas: int | None = None,
        transport: Transport | None = None,
        middleware: Sequence[Any] = (),
        codecs: Codecs | None = None,
        inbox: InboxStore | None = None,
    ) -> None:
        if isinstance(topology, str | Path):
            topology = loader.load(topology)
        if topology is None and name is None:
            raise ValueError("a Hub needs a name or a topology")
        self._file = topology
        self.name = name or topology.hub  # type: ignore[union-attr]
        if topology is not None and topology.hub != self.name:
            raise ValueError(f"hub name {self.name!r} differs from the topology's {topology.hub!r}")
        self.url = url
        #: What the hub reaches its broker through (RabbitMQ at ``url`` by default).
        self.transport: Transport = transport or RabbitMQTransport(url)
        #: Quorum queue replicas for a hub built in code; a file's ``replicas:`` wins.
        self.replicas = replicas
        self.middleware = check(middleware)
        self.codecs = codecs
        #: Where its ``idempotent`` subscribers record what they handled (:mod:`hubbub.inbox`).
        self.inbox = inbox
        self._decorated: dict[str, tuple[Subscriber, Callable[[Event], Any]]] = {}
        self._own_middleware: dict[str, tuple[Any, ...]] = {}
        self._merged: Topology | None = None
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()
        self._warned: set[str | tuple[str, ...]] = set()
        self._matched = _Matched(None)  # topics some subscriber matches, of that wiring
        self._passed: Passed = {}  # handlers found good: checked once, not on every run

    @classmethod
    def from_file(cls, path: str | Path, *, url: str | None = None) -> Hub:
        return cls(topology=loader.load(path), url=url)

    # -- wiring -------------------------------------------------------------

    def subscriber(
        self,
        name: str,
        *,
        topics: Sequence[str],
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        middleware: Sequence[Any] = (),
        **options: Any,
    ) -> Callable[[F], F]:
        """Decorate a handler: ``@hub.subscriber("welcome-email", topics=["user.signed_up"])``.

        ``middleware``: consume hooks for this handler alone, inside the
        hub's (used while this decorated function is the subscriber's handler).
        ``settings={...}``: values for the handler's ``settings`` parameter,
        validated against its annotation when the handlers are built
        (:mod:`hubbub.topology.settings`), as a file's are.

        The function (a plain def or an ``async def``) is checked here (one
        positional argument, not a generator); ``dont_retry`` names when the handlers are built
        (:meth:`handlers`), since they may name types defined further down
        the module being imported.
        """

        own = check(middleware)

        def register(func: F) -> F:
            spec = loader.from_mapping(
                {
                    "hub": self.name,
                    "subscribers": {
                        name: {
                            "handler": f"{func.__module__}:{func.__qualname__}",
                            "topics": list(topics),
                            **(
                                {"retry": retry if isinstance(retry, Mapping) else _as_dict(retry)}
                                if retry is not None
                                else {}
                            ),
                            **options,
                        }
                    },
                },
                source=f"@hub.subscriber({name!r})",
            ).subscribers[0]
            problems = handler_problems(func, spec.handler)
            if problems:
                raise TopologyError(problems, source=f"@hub.subscriber({name!r})")
            if name in self._decorated:
                first = self._decorated[name][0].handler
                raise TopologyError(
                    [f"subscriber {name!r} is decorated twice ({first} and {spec.handler})"],
                    source=f"@hub.subscriber({name!r})",
                )
            self._decorated[name] = (spec, func)
            self._own_middleware[name] = own
            self._merged = None
            return func

        return register

    @property
    def topology(self) -> Topology:
        """The merged topology (file first, then code-only subscribers).

        Built once per change of the wiring (publishing consults it), so the
        file-wins warning is logged once, not on every publish.
        """
        merged = self._merged
        if merged is None:
            merged = self._merged = self._merge()
        return merged

    def _merge(self) -> Topology:
        from_file = {s.name: s for s in self._file.subscribers} if self._file else {}
        for name, (spec, _) in self._decorated.items():
            file_spec = from_file.get(name)
            differs = file_spec and [
                f
                for f in ("handler", "topics", "retry", "settings", "idempotent")
                if getattr(file_spec, f) != getattr(spec, f)
            ]
            if differs:
                log.warning(
                    "subscriber %r is defined in the topology file and in code with different %s; "
                    "the file's settings win",
                    name,
                    ", ".join(differs),
                )
        extra = [spec for name, (spec, _) in self._decorated.items() if name not in from_file]
        replicas = self._file.replicas if self._file and self._file.replicas else self.replicas
        archive = self._file.archive if self._file else None
        return Topology(
            hub=self.name,
            subscribers=(*from_file.values(), *extra),
            replicas=replicas,
            archive=archive,
        )

    def handlers(
        self, subscribers: Sequence[str] | None = None
    ) -> dict[str, Callable[[Event], Any]]:
        """Each subscriber's handler: the decorated function, or the file's import path.

        Only the handlers of ``subscribers`` (default: all) are imported, so a
        process needs only the dependencies of the subscribers it runs. A
        decorated handler comes wrapped in its own ``middleware=`` (the hub's
        are the consumer's to add), its settings bound. Each is checked (see
        :mod:`hubbub.topology.references`) with its settings and ``dont_retry``
        names; every problem is raised at once as a :class:`TopologyError`.
        """
        chosen = [self.topology.subscriber(n) for n in subscribers] if subscribers else None
        specs = chosen if chosen is not None else self.topology.subscribers
        given = {
            sub.name: decorated[1]
            for sub in specs
            if (decorated := self._decorated.get(sub.name)) and decorated[0].handler == sub.handler
        }
        result, problems = resolve_handlers(specs, given, passed=self._passed)
        if problems:
            raise TopologyError(problems, source=f"hub {self.name!r}")
        for name in given:
            result[name] = consuming(self._own_middleware[name], result[name])
        return result

    def plan(self) -> Plan:
        self._refuse_broker("plan its topology on")
        return self.transport.plan(self.topology)

    def apply(self) -> Plan | None:
        """Declare the topology on the broker (idempotent)."""
        self._refuse_broker("declare its topology on")
        return self.transport.apply(self.topology)

    # -- publishing ---------------------------------------------------------

    @property
    def publisher(self) -> Publisher:
        """The hub's publisher; while an in-memory test runs, the in-memory hub's
        (or BrokerOffLimitsError): see :mod:`hubbub.current`."""
        if not self.transport.in_memory:
            stand_in = current.stand_in_for(self.name, to="publish to")
            if stand_in is not None:
                return stand_in
        with self._lock:
            if self._publisher is None:
                self._publisher = Publisher(
                    self.name,
                    url=self.url,
                    transport=self.transport.publisher(name=f"hubbub {self.name}"),
                    clock=self.transport.time,
                    middleware=self.middleware,
                    codecs=self.codecs,
                )
            return self._publisher

    def publish(self, topic: Topics, data: Any = None, **options: Unpack[PublishOptions]) -> str:
        """Publish an event and wait for the broker's confirm; returns its id.

        ``options``: ``headers``, ``message_id``, ``delay``, ``deliver_at``
        (:class:`~hubbub.producers.message.PublishOptions`). An event no
        subscriber of this hub's topology matches is still stored (parked in
        ``<hub>.unrouted``); a warning says so.
        """
        self._warn_if_unmatched(topic)
        return self.publisher.publish(topic, data, **options)

    def publish_many(self, events: Iterable[OutgoingEvent]) -> list[str]:
        """Publish many events with pipelined confirms (see :meth:`Publisher.publish_many`)."""
        return self.publisher.publish_many(events)

    async def apublish(
        self, topic: Topics, data: Any = None, **options: Unpack[PublishOptions]
    ) -> str:
        """:meth:`publish` for asyncio apps: awaits the confirm without blocking the loop."""
        self._warn_if_unmatched(topic)
        return await self.publisher.apublish(topic, data, **options)

    async def apublish_many(self, events: Iterable[OutgoingEvent]) -> list[str]:
        """:meth:`publish_many` for asyncio apps (see :meth:`Publisher.apublish_many`)."""
        return await self.publisher.apublish_many(events)

    def _warn_if_unmatched(self, topic: Topics) -> None:
        """Warn once per topic (per hub) that no subscriber matches it: not on every publish.

        An event of several topics is matched when any of them is. Thread-safe
        enough: two threads racing on a new topic may both warn.
        """
        if type(topic) is not str:
            first, others = split_topics(topic)
            topic = (first, *others) if others else first
        matched, warned = self._matched, self._warned
        if topic in matched or topic in warned or not self.knows_subscribers:
            return
        topology = self.topology
        if matched.wiring is not topology:  # rewired since: match again
            matched = self._matched = _Matched(topology)
        if self.has_subscriber_for(topic):
            if len(matched) >= MAX_WARNED_TOPICS:
                matched.clear()
            matched.add(topic)  # matching costs µs per subscriber: once per topic
            return
        if len(warned) >= MAX_WARNED_TOPICS:
            warned.clear()
        warned.add(topic)
        names = self.topology.names
        log.warning(
            "no subscriber of hub %r matches %r: it will be %s (warned once per topic)",
            self.name,
            topic,
            f"kept in the archive {names.archive} only"
            if self.topology.archive is not None
            else f"parked in {names.unrouted}",
        )

    @property
    def knows_subscribers(self) -> bool:
        """True when this hub was given a topology file or decorated subscribers."""
        return self._file is not None or bool(self._decorated)

    def has_subscriber_for(self, topic: Topics) -> bool:
        """True when some subscriber matches ``topic`` (any of several)."""
        topics = (topic,) if type(topic) is str else topic
        return any(True for each in topics for _ in self.topology.matching(each))

    # -- consuming ----------------------------------------------------------

    def worker(self, subscribers: Sequence[str] | None = None, **options: Any) -> Worker:
        """A :class:`Worker` for some (default all) subscribers; call ``run()`` on it.

        It consumes through the hub's transport (its retry and dead-letter
        copies go to ``url``): a hub in memory has no worker of its own, an
        :class:`~hubbub.testing.InMemoryHub` runs the handlers.
        """
        if self.transport.in_memory:
            raise HubbubError(
                f"hub {self.name!r} runs in memory: use an InMemoryHub and its "
                "run_until_idle() instead of a worker"
            )
        self._refuse_broker("consume from")
        name = options.pop("name", DEFAULT_NAME)
        return Worker(
            self.topology,
            self.handlers(subscribers),
            url=self.url,
            subscribers=subscribers,
            middleware=self.middleware,
            codecs=self.codecs,
            inbox=self.inbox,
            name=name,
            transport=self.transport.consumer(name=f"{name} ({whereabouts()})"),
            **options,
        )

    async def consume(self, subscribers: Sequence[str] | None = None, **options: Any) -> None:
        """Consume in the running event loop until cancelled: for asyncio apps and services.

        ``async def`` handlers run as tasks on this loop (``concurrency``
        events of a subscriber at once); plain def handlers keep their
        threads, and the connection runs on a thread of its own. Cancelling
        the call stops gracefully: events in hand finish within
        ``shutdown_timeout``, the rest go back to their queues, each named in
        a WARNING. ``options`` are :meth:`worker`'s. Raises a fatal error
        (a missing queue, refused credentials) as :meth:`Worker.run` does.
        """
        await self.worker(subscribers, **options).serve()

    @contextlib.asynccontextmanager
    async def running(
        self,
        subscribers: Sequence[str] | None = None,
        *,
        ready_timeout: float = 10.0,
        **options: Any,
    ) -> AsyncIterator[Worker]:
        """Consume in the background of this event loop while the block runs (a lifespan).

        Enters once every subscriber consumes, or after ``ready_timeout``
        seconds with a WARNING (the consumer keeps connecting meanwhile, so a
        broker still starting does not stop an app's start); a fatal error
        before then is raised here. Leaving the block stops as cancelling
        :meth:`consume` does. Yields the :class:`Worker` (``health()``).
        """
        worker = self.worker(subscribers, **options)
        serving = asyncio.ensure_future(worker.serve())
        deadline = asyncio.get_running_loop().time() + ready_timeout
        while not worker.consuming.is_set() and not serving.done():
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "hub %r is not consuming %gs after it started; it keeps connecting",
                    self.name,
                    ready_timeout,
                )
                break
            await asyncio.sleep(0.02)
        if serving.done():
            serving.result()  # a fatal error, raised here
        try:
            yield worker
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving

    def close(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()

    async def aclose(self) -> None:
        """:meth:`close` for asyncio apps (waits for in-flight confirms off the loop)."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _refuse_broker(self, to: str) -> None:
        """While an in-memory hub stands in, a hub on a real broker may not reach it."""
        if not self.transport.in_memory:
            current.refuse_broker(self.name, to=to)


class _Matched(set[str | tuple[str, ...]]):
    """Topics known to match a subscriber of one wiring (``wiring``: the topology)."""

    def __init__(self, wiring: Topology | None) -> None:
        super().__init__()
        self.wiring = wiring


def _as_dict(policy: RetryPolicy) -> dict[str, Any]:
    return {f: getattr(policy, f) for f in RetryPolicy.__dataclass_fields__}
