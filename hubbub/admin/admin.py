"""The admin API: inspect, replay and purge a hub's parked events, and its status.

One :class:`Admin` per hub. Each call opens its own connections and closes
them before returning, so calls are independent (a web page may make them
from different threads) and nothing is held between them. What each
operation guarantees is documented in its module: :mod:`~hubbub.admin.browse`
(reading leaves a queue as it was), :mod:`~hubbub.admin.replay` (nothing is
removed before its copy is confirmed), :mod:`~hubbub.admin.purge`.

A parking queue is named like a subscriber: ``"welcome-email"`` is that
subscriber's dead-letter queue, ``"unrouted"`` the hub's unrouted queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from hubbub.admin import access, edit, listing, rates, status
from hubbub.admin.browse import CHUNKS, Browser, QueueNotFoundError
from hubbub.admin.filters import EVERYTHING, Selection
from hubbub.admin.guard import delivery_limit_problem
from hubbub.admin.purge import PurgeResult, purge
from hubbub.admin.records import FailedEvent
from hubbub.admin.replay import ReplayResult, Target, replay
from hubbub.admin.sources import UNROUTED, Source, ToHub, ToSubscriber, source, subscribers_in
from hubbub.connection import resolve_urls
from hubbub.errors import BrokerConnectionError, ConfigurationError
from hubbub.producers.publisher import Publisher
from hubbub.topology.model import Topology
from hubbub.topology.names import RESERVED_SUBSCRIBERS, SUBSCRIBER_NAME, HubNames
from hubbub.topology.observe import ManagementAPI
from hubbub.transport import open_session

log = logging.getLogger(__name__)

OnEvent = Callable[[FailedEvent], None]


class Admin:
    """Operations on one hub's dead-letter and unrouted queues."""

    def __init__(
        self,
        hub: str | Topology,
        *,
        url: str | None = None,
        management_url: str | None = None,
        chunks: Sequence[int] = CHUNKS,
    ) -> None:
        self.topology = hub if isinstance(hub, Topology) else None
        self.names = HubNames(hub.hub if isinstance(hub, Topology) else hub)
        self.urls = resolve_urls(url)
        self.api = ManagementAPI(self.urls, management_url=management_url)
        self._chunks = tuple(chunks)

    # -- reading ------------------------------------------------------------

    def subscribers(self) -> list[str]:
        """The hub's subscribers: the topology's, else those found on the broker."""
        if self.topology is not None:
            return [s.name for s in self.topology.subscribers]
        try:
            rows = self.api.get(f"queues/{quote(self.api.vhost, safe='')}?columns=name")
        except BrokerConnectionError as exc:
            raise ConfigurationError(
                f"cannot list the subscribers of hub {self.names.hub!r} without a topology "
                f"file: {exc}. Give --file topology.yaml"
            ) from exc
        return subscribers_in(self.names, (row["name"] for row in rows))

    @contextmanager
    def events(
        self, name: str, selection: Selection = EVERYTHING, *, limit: int | None = None
    ) -> Iterator[Iterator[FailedEvent]]:
        """Stream the parked events of ``name`` that ``selection`` picks (head first).

        The queue is left exactly as it was when the block exits.
        """
        where = self._source(name)
        with self._browse(where, "show") as browser:
            yield listing.show(browser, selection, subscriber=where.subscriber, limit=limit)

    def show(
        self, name: str, selection: Selection = EVERYTHING, *, limit: int | None = 100
    ) -> list[FailedEvent]:
        """The parked events of ``name`` that ``selection`` picks, at most ``limit``."""
        with self.events(name, selection, limit=limit) as found:
            return list(found)

    def summaries(self) -> list[listing.Summary]:
        """One summary per subscriber's dead-letter queue, then the unrouted queue."""
        result = []
        for name in [*self.subscribers(), UNROUTED]:
            where = self._source(name)
            try:
                with self._browse(where, "list") as browser:
                    result.append(listing.summarize(browser, name, subscriber=where.subscriber))
            except ConfigurationError as exc:
                if not isinstance(exc.__cause__, QueueNotFoundError):
                    raise
                result.append(listing.Summary(name, where.queue, -1, None, ()))
        return result

    def status(self) -> status.HubStatus:
        """Counts of every queue of the hub (see :mod:`hubbub.admin.status`)."""
        subscribers = [s.name for s in self.topology.subscribers] if self.topology else None
        try:
            return status.from_management(self.api, self.names, subscribers, urls=self.urls)
        except BrokerConnectionError as exc:
            if subscribers is None:
                raise ConfigurationError(
                    f"{exc}. Without it the subscribers are unknown: give --file topology.yaml"
                ) from exc
            return status.from_amqp(self.urls, self.names, subscribers, why=str(exc))

    def rates(self) -> dict[str, rates.QueueRates]:
        """Publish and deliver rates per queue name (empty without the management API)."""
        return rates.from_management(self.api, self.names)

    # -- changing -------------------------------------------------------------

    def replay(
        self,
        name: str,
        selection: Selection,
        *,
        dry_run: bool = False,
        rate: float | None = None,
        on_event: OnEvent | None = None,
    ) -> ReplayResult:
        """Send the picked events of ``name`` back to its subscriber's queue (or the hub)."""
        where = self._source(name)
        target = self._target(where)
        with self._browse(where, "replay") as browser:
            if dry_run:
                return replay(
                    browser,
                    None,
                    target,
                    selection,
                    subscriber=where.subscriber,
                    dry_run=True,
                    on_event=on_event,
                )
            with Publisher(self.names.hub, url=",".join(self.urls), name="hubbub dlq replay") as p:
                return replay(
                    browser,
                    p,
                    target,
                    selection,
                    subscriber=where.subscriber,
                    rate=rate,
                    on_event=on_event,
                    grant=access.operator(self.names),
                )

    def replay_edited(self, name: str, event_id: str, data: Any) -> ReplayResult:
        """Replace parked event ``event_id`` of ``name`` by a copy carrying ``data``.

        The copy goes where :meth:`replay` would send it, marked as edited
        (see :mod:`hubbub.admin.edit`); the original is removed only once
        the broker confirmed the copy, else it stays parked and
        :class:`~hubbub.admin.edit.EditError` is raised.
        """
        body = edit.encode(data)
        where = self._source(name)
        target = self._target(where)
        with (
            self._browse(where, "replay") as browser,
            Publisher(self.names.hub, url=",".join(self.urls), name="hubbub dlq replay") as p,
        ):
            return edit.replay_edited(
                browser,
                p,
                target,
                event_id,
                body,
                subscriber=where.subscriber,
                grant=access.operator(self.names),
            )

    def purge(
        self, name: str, selection: Selection, *, on_event: OnEvent | None = None
    ) -> PurgeResult:
        """Delete the picked events of ``name`` for good."""
        where = self._source(name)
        with self._browse(where, "purge") as browser:
            return purge(browser, selection, subscriber=where.subscriber, on_event=on_event)

    def count(self, name: str, selection: Selection) -> int:
        """How many parked events of ``name`` the selection picks (e.g. before a purge)."""
        with self.events(name, selection) as found:
            return sum(1 for _ in found)

    # -- internals -------------------------------------------------------------

    def _source(self, name: str) -> Source:
        if name != UNROUTED and (not SUBSCRIBER_NAME.match(name) or name in RESERVED_SUBSCRIBERS):
            raise ConfigurationError(
                f"{name!r} is not a subscriber name (or 'unrouted' for the unrouted queue)"
            )
        return source(self.names, name)

    @contextmanager
    def _browse(self, where: Source, verb: str) -> Iterator[Browser]:
        browser = Browser(
            self.urls,
            where.queue,
            name=f"hubbub dlq {verb} {where.queue}",
            chunks=self._chunks,
            grant=access.operator(self.names),
        )
        try:
            browser.open()
        except QueueNotFoundError as exc:
            raise ConfigurationError(self._unknown(where)) from exc
        try:
            self._refuse_delivery_limit(where, browser.server_version)
            yield browser
        except BaseException as exc:
            browser.close(finish=isinstance(exc, Exception))  # Ctrl-C: leave at once
            raise
        browser.close()

    def _unknown(self, where: Source) -> str:
        if where.subscriber is None:
            return (
                f"hub {self.names.hub!r} has no unrouted queue {where.queue!r}: "
                "run 'hubbub topology apply'"
            )
        try:
            known = ", ".join(self.subscribers()) or "none"
        except ConfigurationError:
            known = "unknown"
        return (
            f"unknown subscriber {where.name!r}: hub {self.names.hub!r} has no dead-letter "
            f"queue {where.queue!r} (subscribers: {known}; or 'unrouted')"
        )

    def _target(self, where: Source) -> Target:
        if where.subscriber is not None:
            queue = self.names.queue(where.subscriber)
            self._require_queue(queue)
            return ToSubscriber(queue)
        return ToHub(self.names.exchange, self._bound_patterns())

    def _require_queue(self, queue: str) -> None:
        session = open_session(self.urls, name="hubbub dlq replay (check)")
        try:
            missing = session.queue_counts(queue) is None
        finally:
            session.close()
        if missing:
            raise ConfigurationError(
                f"the subscriber's queue {queue!r} does not exist, so its events cannot be "
                "replayed: run 'hubbub topology apply' first"
            )

    def _bound_patterns(self) -> tuple[str, ...]:
        """Patterns bound to the hub now (broker first; the topology file as a fallback)."""
        vhost = quote(self.api.vhost, safe="")
        try:
            rows = self.api.get(
                f"exchanges/{vhost}/{quote(self.names.exchange, safe='')}/bindings/source"
            )
            return tuple(r["routing_key"] for r in rows if r.get("destination_type") == "queue")
        except BrokerConnectionError as exc:
            if self.topology is None:
                raise ConfigurationError(
                    f"cannot tell which topics have a subscriber: {exc}. Give --file "
                    "topology.yaml to use its patterns instead"
                ) from exc
            log.warning("using the topology file's patterns: %s", exc)
            return tuple(p for s in self.topology.subscribers for p in s.topics)

    def _refuse_delivery_limit(self, where: Source, version: str | None) -> None:
        """Refuse to browse a queue whose delivery limit would drop what a browse returns."""
        vhost = quote(self.api.vhost, safe="")
        try:
            info = self.api.get(f"queues/{vhost}/{quote(where.queue, safe='')}")
        except BrokerConnectionError as exc:
            log.debug("cannot check %s for a delivery limit: %s", where.queue, exc)
            info = None
        problem = delivery_limit_problem(
            where.queue,
            version=version,
            arguments=(info.get("arguments") or {}) if info is not None else None,
            policy=(info.get("effective_policy_definition") or {}) if info is not None else None,
            policy_name=info.get("policy") if info is not None else None,
        )
        if problem:
            raise ConfigurationError(problem)
