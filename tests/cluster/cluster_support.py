"""What the cluster fault tests share: a counted event stream, a counting consumer, figures.

Counting rules (the issue's promises, checked end to end):
- an id ``Publisher.publish_many`` returned (confirmed) must be handled;
- an id whose publish raised may or may not arrive (it is counted apart);
- duplicates are counted and must stay below a stated bound.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hubbub.consumers.observer import Observer
from hubbub.consumers.worker import Worker
from hubbub.envelope import Event
from hubbub.errors import BrokerConnectionError, PublishError
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.topology.declare import declare
from hubbub.topology.layout import layout
from hubbub.topology.loader import from_mapping
from hubbub.topology.model import Topology
from hubbub.transport import open_session
from tests.support.cluster import RabbitCluster
from tests.support.node import RabbitNode


def declare_through(node: RabbitNode, spec: Mapping[str, Any]) -> Topology:
    """Declare a topology over a connection to ``node``.

    Quorum queues get their leader on the node the declaring client is
    connected to (RabbitMQ's default ``client-local`` locator), so every
    queue of the hub starts led by ``node``. (``apply`` is not used: the
    cluster nodes run no management plugin, and a management URL derived from
    127.0.0.1 would read the shared broker's instead.)
    """
    topology = from_mapping(spec)
    session = open_session([node.url], name="hubbub cluster test declare")
    try:
        declare(session, layout(topology))
    finally:
        session.close()
    return topology


def urls_in_order(*nodes: RabbitNode) -> str:
    """A HUBBUB_URL listing ``nodes`` in this order (tests set HUBBUB_URL_ORDER=given)."""
    return ",".join(node.url for node in nodes)


class Tally:
    """A thread-safe handler: when each id was first handled, and how often."""

    def __init__(self, fail_first: Callable[[Event], bool] = lambda event: False) -> None:
        self._lock = threading.Lock()
        self._fail_first = fail_first
        self.counts: Counter[str] = Counter()
        self.first: dict[str, float] = {}
        self.times: list[float] = []
        self.attempts: Counter[int] = Counter()
        self.failed = 0

    def __call__(self, event: Event) -> None:
        if event.attempt == 1 and self._fail_first(event):
            with self._lock:
                self.failed += 1
            raise RuntimeError("first attempt fails on purpose")
        now = time.monotonic()
        with self._lock:
            self.counts[event.id] += 1
            self.first.setdefault(event.id, now)
            self.times.append(now)
            self.attempts[event.attempt] += 1

    def received(self) -> set[str]:
        with self._lock:
            return set(self.counts)

    def duplicates(self) -> int:
        with self._lock:
            return sum(n - 1 for n in self.counts.values())

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time without a handled event within [start, end]."""
        with self._lock:
            times = [start, *(t for t in self.times if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


class Connections(Observer):
    """Records when the consumer's connections opened and closed."""

    def __init__(self) -> None:
        self.opened: list[float] = []
        self.closed: list[float] = []

    def connected(self) -> None:
        self.opened.append(time.monotonic())

    def disconnected(self) -> None:
        self.closed.append(time.monotonic())


class Consumer:
    """A Worker on its own thread, counted by a :class:`Tally`."""

    def __init__(self, topology: Topology, url: str, tally: Tally, **options: Any) -> None:
        self.tally, self.connections = tally, Connections()
        self.worker = Worker(
            topology, {"work": tally}, url=url, observer=self.connections, **options
        )
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> Consumer:
        self.thread.start()
        if not self.worker.consuming.wait(30):
            raise AssertionError(f"the consumer did not start: {self.errors}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(30)


class Stream:
    """Publish batches of events on a thread until stopped, remembering each outcome."""

    def __init__(self, hub: str, url: str, *, batch: int = 10, pause: float = 0.02) -> None:
        self.publisher = Publisher(hub, url=url, confirm_timeout=15)
        self.batch, self.pause = batch, pause
        self.sent: dict[str, float] = {}  # id -> when its confirm came back
        self.raised: list[str] = []
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            ids = [f"s{i:06d}" for i in range(n, n + self.batch)]
            n += self.batch
            events = [OutgoingEvent("job.stream", {"id": i}, message_id=i) for i in ids]
            try:
                self.publisher.publish_many(events)
                failed: set[str] = set()
            except (PublishError, BrokerConnectionError) as exc:
                self.errors[type(exc).__name__] += 1
                failed = set(getattr(exc, "failed", ids))
                self.raised.extend(i for i in ids if i in failed)
                time.sleep(0.1)  # nothing answers for a moment: do not spin
            now = time.monotonic()
            self.sent.update((i, now) for i in ids if i not in failed)
            time.sleep(self.pause)

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(60)
        self.publisher.close()
        assert not self.thread.is_alive(), "the publisher did not stop"

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()

    def first_confirm_after(self, moment: float) -> float:
        return min(t for t in self.sent.values() if t > moment) - moment

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time without a confirm within [start, end]."""
        times = sorted({start, *(t for t in self.sent.values() if start < t < end), end})
        return max(b - a for a, b in itertools.pairwise(times))


@dataclass
class Figures:
    """What one fault did to the stream: printed, and recorded for the report."""

    fault: str
    sent: int = 0
    raised: int = 0
    raised_arrived: int = 0
    received: int = 0
    duplicates: int = 0
    lost: int = 0
    reconnects: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        times = ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        return (
            f"{self.fault}: sent (confirmed) {self.sent}, received {self.received}, "
            f"lost {self.lost}, duplicates {self.duplicates}, publish raised {self.raised} "
            f"(of which arrived {self.raised_arrived}), consumer reconnects {self.reconnects}; "
            f"{times}"
        )


def count(fault: str, sent: set[str], raised: set[str], tally: Tally) -> Figures:
    received = tally.received()
    return Figures(
        fault,
        sent=len(sent),
        raised=len(raised),
        raised_arrived=len(raised & received),
        received=len(received),
        duplicates=tally.duplicates(),
        lost=len(sent - received),
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def other_nodes(cluster: RabbitCluster, *excluded: RabbitNode) -> list[RabbitNode]:
    return [node for node in cluster.nodes if node not in excluded]
