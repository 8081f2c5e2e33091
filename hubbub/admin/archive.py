"""The hub's archive: read it, count it, replay it to one subscriber, backfill a new one.

With ``archive:`` in the topology file the hub keeps a stream bound with
``#`` (and, for delayed events, bound to the delivery exchange): a copy of
every event when it reaches the subscribers, its id, topics, timestamp,
headers and data untouched (:func:`hubbub.topology.layout.layout`). Reading
a stream never removes anything; a reader starts at an offset or a time.

**A window** (:class:`Window`) picks events by time, topic pattern and id.
An event's time is when it reached the hub's subscribers: its publish
timestamp, or for a delayed event the time it was due. Reading starts at
the first stream chunk written :data:`CLOCK_SKEW` seconds before ``since``
and stops at the first event that much past ``until``, so publishers'
clocks may disagree by that much.

**A replay** copies the window's events to one subscriber's queue, and to
it alone (the default exchange, routing key = its queue, as ``hubbub dlq
replay`` does), in archive order, each copy confirmed and marked with the
replay's id (:data:`REPLAY`) and its offset (:data:`OFFSET`). It is
resumable without copying anything twice:

- It first writes a *marker* into the archive (a message carrying
  :data:`MARK`, which every reader skips); the replay ends there, so events
  archived after it started are not replayed (the subscriber gets those
  live, if it is bound to them).
- Its plan (subscriber, window, marker) is the argument :data:`PLAN` of a
  progress queue, ``hubbub.v1.<hub>.replay.<id>``, which holds at most one
  message: each copy is published once with ``BCC`` naming that queue, so
  the broker routes the copy to the subscriber's queue and to the progress
  queue in the same step. The progress queue's message is therefore always
  the last copy the subscriber's queue received.
- ``resume`` reads the plan back (management API) and the offset of the last
  copy, and goes on from the next offset. The progress queue is deleted
  when the replay completes.

**A backfill** starts a new subscriber with history (``backfill: 7d``):
``topology apply`` binds its queue, then :func:`backfill` writes a marker,
waits :data:`SEAM_SETTLE` seconds, reads which events already reached the
new queue live, and replays the window up to the marker minus those. An
event at the seam reaches the subscriber once: live or replayed, not both
(exact while the broker routes within :data:`SEAM_SETTLE`). Events the
subscriber receives are deduplicated nowhere else: a consumer that must
never handle one twice still checks ``event.id``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from hubbub import envelope
from hubbub.admin.browse import Browser
from hubbub.admin.records import decode_data, event_id
from hubbub.admin.replay import Pacer
from hubbub.connection import resolve_urls
from hubbub.errors import BrokerConnectionError, ConfigurationError, HubbubError, PublishError
from hubbub.message import Message, Outbound
from hubbub.producers.publisher import Publisher
from hubbub.topology import patterns
from hubbub.topology.layout import wait_queue
from hubbub.topology.model import Subscriber, Topology
from hubbub.topology.names import HubNames
from hubbub.topology.observe import ManagementAPI
from hubbub.topology.plan import Plan
from hubbub.transport import open_session
from hubbub.transport.errors import NotFoundError
from hubbub.transport.session import STREAM_OFFSET, BrokerSession, StreamOffset

log = logging.getLogger(__name__)

#: Header of a marker written into the archive (not an event; readers skip it).
MARK = "hubbub-archive-mark"
#: Header of a replayed copy: the id of the replay that made it.
REPLAY = "hubbub-replay"
#: Header of a replayed copy: its offset in the archive.
OFFSET = "hubbub-archive-offset"
#: Argument of a replay's progress queue holding its plan (JSON).
PLAN = "x-hubbub-replay"
#: Seconds publishers' clocks (and the broker's chunk times) may be apart.
CLOCK_SKEW = 10.0
#: A read-only window read ends when the archive sends nothing for this long.
IDLE = 1.0
#: A replay waiting for its own marker gives up after this long without a message.
MARK_TIMEOUT = 60.0
#: Unacked messages a reader holds (a stream needs a prefetch; acks only give credit).
CREDIT = 2000
#: Copies in flight (unconfirmed) at once.
WINDOW = 500
#: Seconds a backfill waits after its marker before reading what reached the queue live.
SEAM_SETTLE = 2.0


class ArchiveError(HubbubError):
    """An archive command cannot go on (one line that says what to do)."""


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One event as the archive holds it."""

    offset: int
    id: str
    topic: str
    topics: tuple[str, ...]
    #: When it reached the hub's subscribers (publish time; a delayed one's due time).
    time: datetime | None
    message: Message

    @property
    def headers(self) -> dict[str, Any]:
        """The publisher's own headers (hubbub's and the broker's left out)."""
        return envelope.publisher_headers(self.message.headers)

    @property
    def data(self) -> Any:
        """The decoded JSON data; the body as text when it is not JSON."""
        data, why_not = decode_data(self.message.body, self.message.content_type)
        return self.message.body.decode("utf-8", "replace") if why_not else data

    def as_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "id": self.id,
            "topic": self.topic,
            "topics": list(self.topics),
            "time": self.time.isoformat(timespec="milliseconds") if self.time else None,
            "headers": self.headers,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class Window:
    """Which archived events a command takes: a time window, topic patterns, ids."""

    since: datetime | None = None
    until: datetime | None = None
    #: Patterns; an event matches when one of them matches one of its topics.
    topics: tuple[str, ...] = ()
    ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for pattern in self.topics:
            problems = patterns.pattern_problems(pattern)
            if problems:
                raise ConfigurationError(f"--topic {pattern!r}: {'; '.join(problems)}")
        if self.since and self.until and self.until <= self.since:
            raise ConfigurationError(
                f"the window ends ({_iso(self.until)}) before it starts ({_iso(self.since)})"
            )

    def matches(self, event: ArchivedEvent) -> bool:
        if self.ids and event.id not in self.ids:
            return False
        if self.topics and not any(
            patterns.matches(p, t) for p in self.topics for t in event.topics
        ):
            return False
        if event.time is not None:
            if self.since is not None and event.time < self.since:
                return False
            if self.until is not None and event.time >= self.until:
                return False
        return True

    def start(self) -> StreamOffset:
        """Where reading starts: a little before ``since``, or the archive's first chunk."""
        return "first" if self.since is None else self.since - timedelta(seconds=CLOCK_SKEW)

    def past(self, event: ArchivedEvent) -> bool:
        """True once ``event`` shows the window is over (it is well past ``until``)."""
        return (
            self.until is not None
            and event.time is not None
            and event.time > self.until + timedelta(seconds=CLOCK_SKEW)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "topics": list(self.topics),
            "ids": sorted(self.ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        return cls(
            _parse_iso(data.get("since")),
            _parse_iso(data.get("until")),
            tuple(data.get("topics") or ()),
            frozenset(data.get("ids") or ()),
        )


EVERYTHING = Window()


# -- reading -------------------------------------------------------------------


def archived(offset: int, routing_key: str, message: Message) -> ArchivedEvent:
    """The event an archive message holds (``offset``: where it is in the stream;
    ``routing_key``: the key it was published with)."""
    headers = message.headers or {}
    topic = envelope.topic_of(routing_key, headers)
    return ArchivedEvent(
        offset,
        event_id(message),
        topic,
        envelope.topics_of(topic, headers),
        _event_time(message, headers),
        message,
    )


def read(
    session: BrokerSession,
    stream: str,
    start: StreamOffset,
    *,
    window: Window = EVERYTHING,
    mark: str | None = None,
    idle: float = IDLE,
    credit: int = CREDIT,
) -> Iterator[ArchivedEvent]:
    """The events of ``stream`` from ``start`` that ``window`` picks, in archive order.

    Ends at marker ``mark`` when one is given (the archive's end as a replay
    saw it) when one is given, else when the archive sent nothing for ``idle``
    seconds (its end now); in either case at the first event well past the
    window's end. Markers are skipped.
    """
    reader = session.reader()
    try:
        try:
            reader.consume(stream, credit=credit, tag="hubbub-archive", offset=start)
        except NotFoundError as exc:
            raise ArchiveError(f"there is no archive {stream!r}: {exc}") from exc
        quiet_since = time.monotonic()
        while True:
            got = reader.received()
            if not got:
                quiet = time.monotonic() - quiet_since
                if mark is None and quiet >= idle:
                    return
                if mark is not None and quiet >= MARK_TIMEOUT:
                    raise ArchiveError(
                        f"the archive's end marker did not arrive within {MARK_TIMEOUT:.0f} s; "
                        "run the command again"
                    )
                session.pump(0.02)
                continue
            quiet_since = time.monotonic()
            for _tag, delivery in got:
                message = delivery.message
                headers = message.headers or {}
                marker = headers.get(MARK)
                if marker is not None:
                    if mark is not None and _text(marker) == mark:
                        return
                    continue
                event = archived(_offset(headers), delivery.routing_key, message)
                if window.past(event):
                    return
                if window.matches(event):
                    yield event
            reader.ack(got[-1][1].tag, multiple=True)
    finally:
        if reader.is_open:
            reader.release(timeout=2.0)


@dataclass
class Stats:
    """What ``hubbub archive stats`` shows."""

    stream: str
    arguments: Mapping[str, Any]
    #: Messages the broker counts in the stream (markers included); None: unknown.
    messages: int | None
    first: ArchivedEvent | None
    last: ArchivedEvent | None
    window: Window
    #: Events per topic (each of an event's topics counted) in the window.
    per_topic: Counter[str] = field(default_factory=Counter)
    events: int = 0
    #: Body bytes of the window's events (headers and the broker's overhead apart).
    body_bytes: int = 0


# -- replay --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """What a replay copies where; kept in its progress queue so it can be resumed."""

    id: str
    #: The subscriber whose queue receives the copies.
    to: str
    window: Window
    #: The marker ending it (the archive's end when it started).
    mark: str
    #: Events already in the subscriber's queue (a backfill's seam): never copied.
    skip: frozenset[str] = frozenset()
    #: Events per second at most (None: as fast as the broker confirms).
    rate: float | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "to": self.to,
                "window": self.window.as_dict(),
                "mark": self.mark,
                "skip": sorted(self.skip),
                "rate": self.rate,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ReplayPlan:
        data = json.loads(text)
        return cls(
            data["id"],
            data["to"],
            Window.from_dict(data["window"]),
            data["mark"],
            frozenset(data.get("skip") or ()),
            data.get("rate"),
        )


@dataclass
class ReplayReport:
    """What a replay did (so far, when it stopped)."""

    id: str
    to: str
    dry_run: bool = False
    #: Offset of the last copy made before this run (None: it started from the window).
    resumed_after: int | None = None
    matched: int = 0
    copied: int = 0
    #: Events of the window already in the subscriber's queue (a backfill's seam).
    skipped: int = 0
    first: ArchivedEvent | None = None
    last: ArchivedEvent | None = None
    seconds: float = 0.0


class ReplayStoppedError(ArchiveError):
    """A replay stopped part way: ``report`` says how far; it can be resumed."""

    def __init__(self, message: str, report: ReplayReport) -> None:
        super().__init__(message)
        self.report = report


OnCopy = Callable[[ArchivedEvent], None]


class Archive:
    """One hub's archive: :meth:`stats`, :meth:`events`, :meth:`replay`, :meth:`backfill`.

    Each call opens its connections and closes them before returning.
    """

    def __init__(
        self,
        hub: str | Topology,
        *,
        url: str | None = None,
        management_url: str | None = None,
    ) -> None:
        self.topology = hub if isinstance(hub, Topology) else None
        self.names = HubNames(hub.hub if isinstance(hub, Topology) else hub)
        self.urls = resolve_urls(url)
        self.api = ManagementAPI(self.urls, management_url=management_url)

    # -- reading -------------------------------------------------------------

    def events(
        self, window: Window = EVERYTHING, *, limit: int | None = None
    ) -> list[ArchivedEvent]:
        """The archived events ``window`` picks, oldest first (at most ``limit``)."""
        found = []
        with self._session("show") as session:
            self._require_archive(session)
            for event in read(session, self.names.archive, window.start(), window=window):
                found.append(event)
                if limit is not None and len(found) >= limit:
                    break
        return found

    def stats(self, window: Window = EVERYTHING) -> Stats:
        """Counts of the archive, and per topic of the events ``window`` picks."""
        with self._session("stats") as session:
            self._require_archive(session)
            stream = self.names.archive
            info = self._queue_info(stream) or {}
            first = next(read(session, stream, "first"), None)
            last = _last(session, stream) if first is not None else None
            result = Stats(stream, info.get("arguments") or {}, _count(info), first, last, window)
            for event in read(session, stream, window.start(), window=window):
                result.events += 1
                result.body_bytes += len(event.message.body)
                result.per_topic.update(event.topics)
        return result

    # -- replaying -----------------------------------------------------------

    def replay(
        self,
        to: str,
        window: Window,
        *,
        rate: float | None = None,
        dry_run: bool = False,
        on_copy: OnCopy | None = None,
        on_start: Callable[[ReplayPlan], None] | None = None,
    ) -> ReplayReport:
        """Copy the events ``window`` picks to subscriber ``to``'s queue alone (see module)."""
        queue = self.names.queue(to)
        with self._session("replay") as session:
            self._require_archive(session)
            self._require_subscriber(session, to, queue)
            if dry_run:
                return self._dry_run(session, to, window, on_copy)
            if window.since is not None and window.since > datetime.now(timezone.utc):
                return ReplayReport("(none)", to)  # nothing archived yet: no marker to wait for
            plan = ReplayPlan(_new_id(), to, window, _new_id(), rate=rate)
            with self._publisher(plan.id) as publisher:
                _put_mark(publisher, self.names.archive, plan.mark)
                return self._run(session, publisher, plan, None, on_copy, on_start)

    def resume(self, replay_id: str, *, on_copy: OnCopy | None = None) -> ReplayReport:
        """Go on with replay ``replay_id`` after the last copy it made."""
        plan = self._plan(replay_id)
        with self._session("replay") as session:
            self._require_archive(session)
            self._require_subscriber(session, plan.to, self.names.queue(plan.to))
            last = session.peek_message(self.names.replay_progress(replay_id))
            after = _offset(last.headers or {}, OFFSET) if last is not None else None
            with self._publisher(plan.id) as publisher:
                return self._run(session, publisher, plan, after, on_copy, None)

    def unfinished(self) -> list[tuple[ReplayPlan, int | None]]:
        """Replays that stopped before the end: each plan and the offset of its last copy."""
        vhost = quote(self.api.vhost, safe="")
        try:
            rows = self.api.get(f"queues/{vhost}?columns=name,arguments")
        except BrokerConnectionError as exc:
            raise ArchiveError(f"cannot list unfinished replays: {exc}") from exc
        found = []
        with self._session("replays") as session:
            for row in rows:
                replay_id = self.names.parse_replay_progress(row.get("name", ""))
                text = (row.get("arguments") or {}).get(PLAN)
                if replay_id is None or not isinstance(text, str):
                    continue
                last = session.peek_message(row["name"])
                offset = _offset(last.headers or {}, OFFSET) if last is not None else None
                found.append((ReplayPlan.from_json(text), offset))
        return found

    def backfill(
        self,
        to: str,
        since: datetime,
        bound_at: datetime,
        *,
        rate: float | None = None,
        on_start: Callable[[ReplayPlan], None] | None = None,
    ) -> ReplayReport:
        """Replay to ``to`` (bound to the hub at ``bound_at``) its events since ``since``.

        Call it once the subscriber's queue is bound and before its consumers
        start; see the module for the seam.
        """
        sub = self._subscriber(to)
        queue = self.names.queue(to)
        mark = _new_id()
        with self._session("backfill") as session, self._publisher(mark) as publisher:
            self._require_archive(session)
            self._require_subscriber(session, to, queue)
            _put_mark(publisher, self.names.archive, mark)
            session.pump(SEAM_SETTLE)
            # Where live events are: its wait queue (delay:), then its queue. The wait
            # queue first: an event it lets go while both are read is then seen in one.
            waiting = wait_queue(self.names, sub)
            live = self._ids_in(waiting) if waiting is not None else set()
            live |= self._ids_in(queue)
            seam = Window(since=bound_at - timedelta(seconds=60))
            skip = frozenset(
                e.id
                for e in read(session, self.names.archive, seam.start(), window=seam, mark=mark)
                if e.id in live
            )
            plan = ReplayPlan(
                _new_id(), to, Window(since=since, topics=sub.topics), mark, skip, rate
            )
            return self._run(session, publisher, plan, None, None, on_start)

    def to_backfill(self, plan: Plan | None) -> list[Subscriber]:
        """The subscribers with ``backfill:`` whose queue ``plan`` created (new ones)."""
        if self.topology is None or plan is None:
            return []
        created = {c.name for c in plan.changes if c.action == "create" and c.kind == "queue"}
        return [
            s
            for s in self.topology.subscribers
            if s.backfill is not None and self.names.queue(s.name) in created
        ]

    # -- internals -----------------------------------------------------------

    def _run(
        self,
        session: BrokerSession,
        publisher: Publisher,
        plan: ReplayPlan,
        after: int | None,
        on_copy: OnCopy | None,
        on_start: Callable[[ReplayPlan], None] | None,
    ) -> ReplayReport:
        progress = self.names.replay_progress(plan.id)
        if after is None:
            session.declare_queue(progress, arguments=_progress_arguments(plan))
        if on_start is not None:
            on_start(plan)
        report = ReplayReport(plan.id, plan.to, resumed_after=after)
        began = time.monotonic()
        start: StreamOffset = after + 1 if after is not None else plan.window.start()
        copier = _Copier(publisher, self.names.queue(plan.to), progress, plan, report, on_copy)
        pacer = Pacer(session.pump, plan.rate)
        try:
            for event in read(
                session, self.names.archive, start, window=plan.window, mark=plan.mark
            ):
                report.matched += 1
                if event.id in plan.skip:
                    report.skipped += 1
                    continue
                pacer.wait()
                copier.send(event)
                if copier.error is not None:
                    break
        finally:
            copier.settle_all()
        report.seconds = time.monotonic() - began
        if copier.error is not None:
            raise ReplayStoppedError(
                f"replay {plan.id} to {plan.to} stopped after {report.copied} copies: "
                f"{copier.error}; go on with: hubbub archive replay --resume {plan.id}",
                report,
            )
        session.delete_queue(progress)
        return report

    def _dry_run(
        self, session: BrokerSession, to: str, window: Window, on_copy: OnCopy | None
    ) -> ReplayReport:
        report = ReplayReport("(dry run)", to, dry_run=True)
        began = time.monotonic()
        for event in read(session, self.names.archive, window.start(), window=window):
            report.matched += 1
            report.first = report.first or event
            report.last = event
            if on_copy is not None:
                on_copy(event)
        report.seconds = time.monotonic() - began
        return report

    def _publisher(self, replay_id: str) -> Publisher:
        """The one connection a replay publishes on: its marker, then its copies."""
        return Publisher(
            self.names.hub, url=",".join(self.urls), name=f"hubbub archive replay {replay_id}"
        )

    def _ids_in(self, queue: str) -> set[str]:
        """Ids of the events in ``queue`` now, read and handed back in order (a browse)."""
        with Browser(self.urls, queue, name=f"hubbub archive backfill {queue}") as browser:
            return {event_id(held.message) for held in browser.messages()}

    def _plan(self, replay_id: str) -> ReplayPlan:
        name = self.names.replay_progress(replay_id)
        info = self._queue_info(name)
        if info is None:
            raise ArchiveError(
                f"no unfinished replay {replay_id!r} in hub {self.names.hub!r} "
                "(it completed, or was never started): hubbub archive replays lists them"
            )
        text = (info.get("arguments") or {}).get(PLAN)
        if not isinstance(text, str):
            raise ArchiveError(f"queue {name!r} holds no replay plan: delete it")
        return ReplayPlan.from_json(text)

    def _queue_info(self, name: str) -> dict[str, Any] | None:
        vhost = quote(self.api.vhost, safe="")
        try:
            result: dict[str, Any] = self.api.get(f"queues/{vhost}/{quote(name, safe='')}")
        except BrokerConnectionError as exc:
            if "404" in str(exc) or "not found" in str(exc).lower():
                return None
            raise ArchiveError(f"cannot read queue {name!r}: {exc}") from exc
        return result

    def _subscriber(self, name: str) -> Any:
        if self.topology is None:
            raise ArchiveError("a backfill needs the topology file (its subscriber's topics)")
        try:
            return self.topology.subscriber(name)
        except KeyError as exc:
            raise ArchiveError(str(exc.args[0])) from exc

    def _require_archive(self, session: BrokerSession) -> None:
        if session.queue_counts(self.names.archive) is None:
            raise ArchiveError(
                f"hub {self.names.hub!r} keeps no archive: add 'archive: {{retention: 30d}}' "
                "to its topology file and run 'hubbub topology apply'"
            )

    def _require_subscriber(self, session: BrokerSession, name: str, queue: str) -> None:
        if session.queue_counts(queue) is not None:
            return
        if self.topology is not None:
            known = ", ".join(s.name for s in self.topology.subscribers) or "none"
            raise ArchiveError(
                f"unknown subscriber {name!r}: hub {self.names.hub!r} has no queue {queue!r} "
                f"(subscribers in the file: {known}; run 'hubbub topology apply' for a new one)"
            )
        raise ArchiveError(
            f"unknown subscriber {name!r}: hub {self.names.hub!r} has no queue {queue!r} "
            "(run 'hubbub topology apply' for a new one)"
        )

    def _session(self, verb: str) -> _Session:
        return _Session(self.urls, f"hubbub archive {verb}")


class _Session:
    """A broker session for one call, closed whatever happens."""

    def __init__(self, urls: Sequence[str], name: str) -> None:
        self.urls, self.name = urls, name

    def __enter__(self) -> BrokerSession:
        self.session = open_session(self.urls, name=self.name)
        return self.session

    def __exit__(self, *_exc: object) -> None:
        self.session.close()


class _Copier:
    """Pipelines copies to the subscriber's queue (and, by ``BCC``, the progress queue)."""

    def __init__(
        self,
        publisher: Publisher,
        queue: str,
        progress: str,
        plan: ReplayPlan,
        report: ReplayReport,
        on_copy: OnCopy | None,
    ) -> None:
        self.publisher = publisher
        self.queue = queue
        self.progress = progress
        self.plan = plan
        self.report = report
        self.on_copy = on_copy
        self.pending: deque[tuple[ArchivedEvent, Future[None]]] = deque()
        self.error: str | None = None

    def send(self, event: ArchivedEvent) -> None:
        copy = event.message.republished(replay_headers(event, self.plan.id, self.progress))
        future = self.publisher.send(Outbound("", self.queue, copy, mandatory=True))
        self.pending.append((event, future))
        self._settle(block=len(self.pending) >= WINDOW)

    def settle_all(self) -> None:
        self._settle(block=True)

    def _settle(self, *, block: bool) -> None:
        while self.pending and (block or self.pending[0][1].done()):
            event, future = self.pending.popleft()
            try:
                self.publisher.wait(future)
            except (PublishError, BrokerConnectionError) as exc:
                self.error = self.error or f"event {event.id} ({event.topic}): {exc}"
                continue
            if self.error is not None:
                continue  # confirmed after a failure: counted by the resume, not here
            self.report.copied += 1
            self.report.first = self.report.first or event
            self.report.last = event
            if self.on_copy is not None:
                self.on_copy(event)


def _put_mark(publisher: Publisher, stream: str, mark: str) -> None:
    """Write marker ``mark`` at the end of archive ``stream`` (straight into the stream)."""
    message = Message(b"", headers={MARK: mark}, delivery_mode=envelope.PERSISTENT)
    try:
        publisher.wait(publisher.send(Outbound("", stream, message, mandatory=True)))
    except PublishError as exc:
        raise ArchiveError(
            f"cannot write the replay's marker into the archive {stream!r}: {exc}"
        ) from exc


def replay_headers(event: ArchivedEvent, replay_id: str, progress: str) -> dict[str, Any]:
    """Headers of ``event``'s copy: aimed at one queue, marked as a replay, ``BCC`` to
    the replay's progress queue (removed by the broker before delivery)."""
    headers = envelope.aimed_copy_headers(event.message.headers, event.topics)
    headers[envelope.TOPIC] = event.topic
    headers[REPLAY] = replay_id
    headers[OFFSET] = event.offset
    headers[envelope.BCC] = [progress]
    return headers


def _last(session: BrokerSession, stream: str) -> ArchivedEvent | None:
    """The archive's newest event: in its last chunk, unless that holds only markers;
    then in its last hour, day, or anywhere."""
    now = datetime.now(timezone.utc)
    starts: list[StreamOffset] = [
        "last",
        now - timedelta(hours=1),
        now - timedelta(days=1),
        "first",
    ]
    for start in starts:
        last = None
        for last in read(session, stream, start):  # noqa: B007 (the last one is wanted)
            pass
        if last is not None:
            return last
    return None


def _progress_arguments(plan: ReplayPlan) -> dict[str, Any]:
    """A queue keeping one message, the newest (the last copy made), and the plan."""
    return {
        "x-queue-type": "quorum",
        "x-max-length": 1,
        "x-overflow": "drop-head",
        PLAN: plan.to_json(),
    }


def _event_time(message: Message, headers: Mapping[str, Any]) -> datetime | None:
    due = headers.get(envelope.DUE_MS)
    if isinstance(due, int) and not isinstance(due, bool) and due > 0:
        return datetime.fromtimestamp(due / 1000, timezone.utc)
    if message.timestamp:
        return datetime.fromtimestamp(message.timestamp, timezone.utc)
    return None


def _offset(headers: Mapping[str, Any], key: str = STREAM_OFFSET) -> int:
    value = headers.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ArchiveError(f"a message read from the archive has no {key} header")


def _count(info: Mapping[str, Any]) -> int | None:
    value = info.get("messages")
    return value if isinstance(value, int) else None


def _new_id() -> str:
    return envelope.new_id()[:12]


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_iso(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


__all__ = [
    "Archive",
    "ArchiveError",
    "ArchivedEvent",
    "ReplayPlan",
    "ReplayReport",
    "ReplayStoppedError",
    "Stats",
    "Window",
    "read",
]
