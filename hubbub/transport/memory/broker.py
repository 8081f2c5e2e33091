"""The few RabbitMQ features a hub uses, in memory, driven by a (fake) clock.

The broker under the in-memory transport (:mod:`hubbub.transport.memory`).
It is built from the same :func:`~hubbub.topology.layout.layout` the real
hub declares (exchanges, queues, bindings, alternate exchanges, per-queue
TTLs and dead-letter exchanges), so the in-memory hub routes through the
very bindings the broker would hold, delay ladder included. Topic bindings
match with :func:`hubbub.topology.patterns.matches`, the one matcher, which
the contract suite checks against the real broker.

Modelled as RabbitMQ does it: a message reaches each queue at most once per
publish however many bindings match; an exchange whose own bindings match
nothing hands the message to its alternate exchange; exchange-to-exchange
bindings are followed (once per exchange); a queue's ``x-message-ttl``
expires messages in order and dead-letters them into
``x-dead-letter-exchange`` with their routing key (or
``x-dead-letter-routing-key``) and an ``x-death`` entry; a delivery stays
*unacked* (out of its queue, counted) until it is acked, or requeued to the
head of its queue marked ``redelivered``. Not modelled: delivery limits (an
in-memory handler cannot crash its consumer), length limits, priorities,
per-message ``expiration``.

Thread-safe: one lock guards it all (a worker with handler threads acks and
publishes copies from them), and nothing in it blocks.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hubbub import envelope
from hubbub.errors import HubbubError, PublishError
from hubbub.message import Message, Outbound
from hubbub.topology import patterns
from hubbub.topology.layout import Binding, Exchange, Layout
from hubbub.topology.names import HubNames
from hubbub.topology.plan import Observed, ObservedExchange, ObservedQueue

#: Expiries one :meth:`MemoryBroker.expire` handles before it calls the routing broken.
MAX_EXPIRIES = 100_000


@dataclass(frozen=True, slots=True)
class Queued:
    """A message in a queue, with where it was published (what a consumer is told)."""

    exchange: str
    routing_key: str
    message: Message
    redelivered: bool = False


@dataclass(slots=True)
class _Queue:
    name: str
    ttl: float | None = None
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    #: The arguments it was declared with (what a plan compares).
    arguments: tuple[tuple[str, Any], ...] = ()
    #: (enqueued at, message), oldest first.
    messages: deque[tuple[float, Queued]] = field(default_factory=deque)

    def head_expiry(self) -> float | None:
        if self.ttl is None or not self.messages:
            return None
        return self.messages[0][0] + self.ttl


@dataclass(frozen=True, slots=True)
class _Unacked:
    """A delivered message not acked yet: where it came from, to requeue it."""

    queue: str
    enqueued: float
    message: Queued


class MemoryBroker:
    """Exchanges and queues of one or more layouts, read by ``clock`` (epoch seconds)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._exchanges: dict[str, Exchange] = {}
        self._bindings: dict[str, list[Binding]] = {}
        self._queues: dict[str, _Queue] = {}
        self._unacked: dict[int, _Unacked] = {}
        self._tags = 0

    def time(self) -> float:
        """The broker's clock (epoch seconds)."""
        return self._clock()

    # -- declaring -----------------------------------------------------------

    def declare(self, layout: Layout) -> None:
        """Declare ``layout`` as ``hubbub topology apply`` would (queues keep their messages).

        The bindings from the layout's exchanges are replaced by the layout's,
        as apply removes the stale bindings of a hub.
        """
        with self._lock:
            for exchange in layout.exchanges:
                self._exchanges[exchange.name] = exchange
                self._bindings[exchange.name] = []
            for queue in layout.queues:
                args = queue.args
                ttl_ms = args.get("x-message-ttl")
                existing = self._queues.get(queue.name)
                self._queues[queue.name] = _Queue(
                    queue.name,
                    ttl=ttl_ms / 1000 if isinstance(ttl_ms, int) else None,
                    dead_letter_exchange=args.get("x-dead-letter-exchange"),
                    dead_letter_routing_key=args.get("x-dead-letter-routing-key"),
                    arguments=queue.arguments,
                    messages=existing.messages if existing else deque(),
                )
            for binding in layout.bindings:
                self._bindings[binding.source].append(binding)

    def observe(self, names: HubNames) -> Observed:
        """What this broker holds of ``names``' hub, as the management API would tell it."""
        with self._lock:
            held = Counter(unacked.queue for unacked in self._unacked.values())
            exchanges = {
                e.name: ObservedExchange(e.type, e.args)
                for e in self._exchanges.values()
                if names.owns(e.name, "exchange")
            }
            queues = {
                q.name: ObservedQueue(dict(q.arguments), len(q.messages) + held[q.name])
                for q in self._queues.values()
                if names.owns(q.name, "queue")
            }
            bindings = frozenset(
                b
                for source, declared in self._bindings.items()
                if names.owns(source, "exchange")
                for b in declared
                if names.owns(b.destination, b.destination_type)
            )
        return Observed(exchanges, queues, bindings)

    def delete_queue_if_empty(self, name: str) -> bool:
        """Delete queue ``name`` (and the bindings into it) unless it holds or lent out
        a message; True when it was deleted."""
        with self._lock:
            queue = self._queues.get(name)
            if (
                queue is None
                or queue.messages
                or any(held.queue == name for held in self._unacked.values())
            ):
                return False
            del self._queues[name]
            for source, declared in self._bindings.items():
                self._bindings[source] = [b for b in declared if b.destination != name]
            return True

    def has_queue(self, name: str) -> bool:
        return name in self._queues

    def has_exchange(self, name: str) -> bool:
        """True for a declared exchange (and for the default exchange, ``""``)."""
        return not name or name in self._exchanges

    # -- publishing ----------------------------------------------------------

    def publish(self, outbound: Outbound) -> list[str]:
        """Route a message and store a copy in every queue it reaches; returns their names.

        Raises PublishError for an exchange that does not exist, as the
        broker closes the channel (404) and the publisher reports it.
        """
        exchange = outbound.exchange
        with self._lock:
            if not self.has_exchange(exchange):
                raise PublishError(
                    f"NOT_FOUND - no exchange {exchange!r}: the exchange does not exist; run "
                    "'hubbub topology apply' first. The message was not stored"
                )
            queued = Queued(exchange, outbound.routing_key, outbound.message)
            return self._store(queued, self._clock())

    def _store(self, message: Queued, at: float, keys: tuple[str, ...] | None = None) -> list[str]:
        """Route ``message`` under ``keys`` (default: its routing key and ``CC``/``BCC``'s)."""
        if keys is None:
            keys = routing_keys(message.routing_key, message.message.headers)
            if message.message.headers and envelope.BCC in message.message.headers:
                headers = dict(message.message.headers)
                del headers[envelope.BCC]  # the broker removes it before anyone sees it
                message = replace(message, message=message.message.with_headers(headers))
        if message.exchange:
            queues = list(self._route(message.exchange, keys, frozenset()))
        else:  # the default exchange: straight to the queues of those names
            queues = list(dict.fromkeys(k for k in keys if k in self._queues))
        for name in queues:  # each queue its own headers, as each holds its own copy
            copied = replace(message, message=_isolated(message.message))
            self._queues[name].messages.append((at, copied))
        return queues

    def _route(self, exchange: str, keys: tuple[str, ...], seen: frozenset[str]) -> dict[str, None]:
        """Queues ``keys`` reach from ``exchange``, in binding order, each once.

        All of a message's keys are routed together, as RabbitMQ does
        (sender-selected distribution): a binding matching any of them
        counts once, and the alternate exchange takes the message only when
        no binding matches any key.
        """
        declared = self._exchanges.get(exchange)
        if declared is None:
            return {}  # an alternate or bound exchange that is gone: the broker drops
        seen = seen | {exchange}
        matched = [
            b
            for b in self._bindings.get(exchange, ())
            if any(_binds(declared, b.routing_key, key) for key in keys)
        ]
        alternate = declared.args.get("alternate-exchange")
        if not matched and alternate and alternate not in seen:
            return self._route(alternate, keys, seen)
        result: dict[str, None] = {}
        for binding in matched:
            if binding.destination_type == "queue":
                result[binding.destination] = None
            elif binding.destination not in seen:
                result.update(self._route(binding.destination, keys, seen))
        return result

    # -- consuming -----------------------------------------------------------

    def deliver(self, queue: str) -> tuple[int, Queued] | None:
        """Take the oldest message of ``queue`` unacked: its broker-wide tag and it, or None.

        It stays the broker's until :meth:`ack` (gone) or :meth:`requeue`
        (back at the head of its queue, ``redelivered``).
        """
        with self._lock:
            messages = self._queue(queue).messages
            if not messages:
                return None
            enqueued, message = messages.popleft()
            self._tags += 1
            self._unacked[self._tags] = _Unacked(queue, enqueued, message)
            return self._tags, message

    def ack(self, tag: int) -> None:
        """Forget delivery ``tag`` (a tag not unacked is ignored)."""
        with self._lock:
            self._unacked.pop(tag, None)

    def requeue(self, tags: Sequence[int]) -> None:
        """Put the deliveries ``tags`` back at the head of their queues, in tag order.

        Each is marked ``redelivered``, keeps its place before what came
        after it, and its time in the queue (a TTL counts from the first
        enqueue, as RabbitMQ counts it).
        """
        with self._lock:
            for tag in sorted(tags, reverse=True):
                held = self._unacked.pop(tag, None)
                if held is not None and held.queue in self._queues:
                    again = replace(held.message, redelivered=True)
                    self._queues[held.queue].messages.appendleft((held.enqueued, again))

    def unacked(self, queue: str) -> int:
        """Deliveries from ``queue`` not acked yet."""
        with self._lock:
            return sum(1 for held in self._unacked.values() if held.queue == queue)

    def get(self, queue: str) -> Queued | None:
        """Take the oldest message of ``queue`` (``basic.get`` with auto-ack), or None."""
        with self._lock:
            messages = self._queue(queue).messages
            return messages.popleft()[1] if messages else None

    def messages(self, queue: str) -> list[Queued]:
        """What ``queue`` holds ready, oldest first (left in place; unacked ones not)."""
        with self._lock:
            return [message for _, message in self._queue(queue).messages]

    def take(self, queue: str, wanted: Callable[[Queued], bool]) -> list[Queued]:
        """Remove and return the messages of ``queue`` that ``wanted`` accepts."""
        with self._lock:
            q = self._queue(queue)
            taken = [m for _, m in q.messages if wanted(m)]
            q.messages = deque((t, m) for t, m in q.messages if not wanted(m))
            return taken

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise KeyError(f"no queue {name!r} is declared") from None

    # -- time ----------------------------------------------------------------

    def next_expiry(self) -> float | None:
        """Epoch seconds at which the next message expires out of a TTL queue."""
        with self._lock:
            return min(
                (t for q in self._queues.values() if (t := q.head_expiry()) is not None),
                default=None,
            )

    def expire(self) -> int:
        """Dead-letter every message whose TTL has passed, in the order they expired."""
        with self._lock:
            now, count = self._clock(), 0
            while True:
                due = [(t, q) for q in self._queues.values() if (t := q.head_expiry()) is not None]
                if not due:
                    return count
                at, queue = min(due, key=lambda item: item[0])
                if at > now:
                    return count
                _, message = queue.messages.popleft()
                self._dead_letter(queue, message, at)
                count += 1
                if count > MAX_EXPIRIES:
                    raise HubbubError(
                        f"{count} messages expired at once: the TTL queues keep multiplying "
                        "messages, so the bindings route one message into several of them"
                    )

    def _dead_letter(self, queue: _Queue, message: Queued, at: float) -> None:
        """Dead-letter as RabbitMQ does: under the queue's dead-letter routing key (and
        without ``CC``) when it has one, else under every key it was published with."""
        if not queue.dead_letter_exchange:
            return
        headers = _with_death(message.message.headers, queue.name, message, at)
        if queue.dead_letter_routing_key:
            keys: tuple[str, ...] = (queue.dead_letter_routing_key,)
            headers.pop(envelope.CC, None)
            key = queue.dead_letter_routing_key
        else:
            keys, key = (
                routing_keys(message.routing_key, message.message.headers),
                message.routing_key,
            )
        dead = replace(message.message, expiration=None, headers=headers)
        self._store(Queued(queue.dead_letter_exchange, key, dead), at, keys)


def routing_keys(routing_key: str, headers: Mapping[str, Any] | None) -> tuple[str, ...]:
    """A message's routing keys: its own, then ``CC``'s and ``BCC``'s (strings, each once)."""
    if not headers or (envelope.CC not in headers and envelope.BCC not in headers):
        return (routing_key,)
    keys = [routing_key]
    for name in (envelope.CC, envelope.BCC):
        listed = headers.get(name)
        if isinstance(listed, list | tuple):
            keys += [k.decode() if isinstance(k, bytes) else k for k in listed]
    return tuple(dict.fromkeys(k for k in keys if isinstance(k, str)))


def _isolated(message: Message) -> Message:
    """``message`` with headers of its own (a copy's headers never change another's)."""
    if not message.headers:
        return message
    return message.with_headers(copy.deepcopy(dict(message.headers)))


def _binds(exchange: Exchange, binding_key: str, routing_key: str) -> bool:
    if exchange.type == "fanout":
        return True
    if exchange.type == "direct":
        return binding_key == routing_key
    return patterns.matches(binding_key, routing_key)


def _with_death(
    headers: Mapping[str, Any] | None, queue: str, message: Queued, at: float
) -> dict[str, Any]:
    """Headers plus the ``x-death`` bookkeeping the broker adds when it dead-letters."""
    result = dict(headers or {})
    deaths = [dict(d) for d in result.get("x-death") or []]
    mine = next(
        (d for d in deaths if d.get("queue") == queue and d.get("reason") == "expired"), None
    )
    if mine is not None:
        deaths.remove(mine)
        mine["count"] = int(mine.get("count", 0)) + 1
    else:
        mine = {
            "count": 1,
            "queue": queue,
            "reason": "expired",
            "exchange": message.exchange,
            "routing-keys": [message.routing_key],
        }
    mine["time"] = int(at)
    result["x-death"] = [mine, *deaths]
    result.setdefault("x-first-death-queue", queue)
    result.setdefault("x-first-death-reason", "expired")
    result.setdefault("x-first-death-exchange", message.exchange)
    return result
