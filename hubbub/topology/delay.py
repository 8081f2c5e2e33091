"""The binary TTL ladder that holds delayed events inside RabbitMQ (pure).

A delay of ``n`` whole seconds is written as 28 binary words (bit 27 first)
in front of the routing key. Level ``L`` is a topic exchange plus a quorum
queue whose per-queue TTL is ``2**L`` seconds; its exchange sends keys whose
bit ``L`` is 1 into its queue and keys whose bit is 0 straight on to level
``L-1``. An expired message is dead-lettered (at-least-once) into level
``L-1``'s exchange, level 0's into the delivery exchange. So an event waits
exactly ``n`` seconds, in at most 28 queues, with no timer process and no
plugin (NOTES.md, "Binary TTL ladder"). Per-queue TTL, not per-message TTL:
per-message TTLs only expire at the head of a queue.

After the bits comes a mark: ``e.<topic>`` for an event delivered to every
subscriber whose pattern matches, ``q.<subscriber>`` for a retry aimed at one
subscriber's queue. The marks keep a catch-all ``#`` subscriber from seeing
other subscribers' retries.
"""

from __future__ import annotations

import math

from hubbub.errors import ConfigurationError, DelayTooLongError
from hubbub.topology.names import HubNames
from hubbub.topology.patterns import MAX_KEY_BYTES

#: Number of ladder levels; the longest delay is ``2**LEVELS - 1`` seconds.
LEVELS = 28
#: About 8.5 years.
MAX_DELAY_SECONDS = 2**LEVELS - 1
#: Routing-key mark of an event delayed for every matching subscriber.
EVENT_MARK = "e"
#: Routing-key mark of a copy aimed at a single subscriber's queue.
QUEUE_MARK = "q"
#: ``*`` for each bit word: the prefix of every delivery-exchange binding.
ANY_BITS = ".".join(["*"] * LEVELS)
#: Bytes the ladder adds in front of a topic (bits, dots and the mark).
KEY_OVERHEAD = len(ANY_BITS) + 3


def whole_seconds(delay: float) -> int:
    """``delay`` rounded up to whole seconds, refused when the ladder cannot hold it."""
    seconds = max(0, math.ceil(delay))
    if seconds > MAX_DELAY_SECONDS:
        raise DelayTooLongError(
            f"a delay of {seconds} s exceeds the longest the broker can hold "
            f"({MAX_DELAY_SECONDS} s, about 8.5 years); keep the event elsewhere and "
            "publish it closer to its time"
        )
    return seconds


def bits(seconds: int) -> str:
    """The 28 bit words of ``seconds``, most significant (level 27) first."""
    return ".".join(format(seconds, f"0{LEVELS}b"))


def entry_exchange(names: HubNames, seconds: int) -> str:
    """Where a message delayed ``seconds`` is published: the level of its highest set bit.

    Entering at level 27 would work too (every clear bit passes the message
    on), but each exchange-to-exchange hop costs the broker a topic match on a
    key of 30-odd words; entering at the first level the message must wait in
    skips them, and a zero delay goes straight to the delivery exchange
    (NServiceBus computes its starting level the same way).
    """
    return names.level(seconds.bit_length() - 1) if seconds else names.delivery


def event_key(seconds: int, topic: str) -> str:
    """Routing key that delivers ``topic`` to its subscribers after ``seconds``.

    Raises ConfigurationError when the ladder's prefix would push the key past
    AMQP's 255-byte limit (subscriber patterns are held to the same bound).
    """
    if len(topic.encode()) + KEY_OVERHEAD > MAX_KEY_BYTES:
        raise ConfigurationError(
            f"topic {topic[:40]!r}... is too long to be delayed: at most "
            f"{MAX_KEY_BYTES - KEY_OVERHEAD} bytes (the delay ladder adds {KEY_OVERHEAD})"
        )
    return f"{bits(seconds)}.{EVENT_MARK}.{topic}"


def queue_key(seconds: int, subscriber: str) -> str:
    """Routing key that delivers to ``subscriber``'s queue alone after ``seconds``."""
    return f"{bits(seconds)}.{QUEUE_MARK}.{subscriber}"


def level_queue_pattern(level: int) -> str:
    """Binding from level ``level``'s exchange to its own queue (bit set)."""
    return _at_bit(level, "1")


def level_pass_pattern(level: int) -> str:
    """Binding from level ``level``'s exchange on to the next level down (bit clear)."""
    return _at_bit(level, "0")


def delivery_event_pattern(pattern: str) -> str:
    """Delivery-exchange binding that gives a subscriber the delayed events of ``pattern``."""
    return f"{ANY_BITS}.{EVENT_MARK}.{pattern}"


def delivery_queue_pattern(subscriber: str) -> str:
    """Delivery-exchange binding that gives a subscriber copies aimed at it."""
    return f"{ANY_BITS}.{QUEUE_MARK}.{subscriber}"


def strip(routing_key: str) -> tuple[str, str] | None:
    """``(mark, rest)`` of a ladder routing key, or None when it is not one."""
    words = routing_key.split(".", LEVELS + 1)
    if len(words) <= LEVELS + 1 or any(w not in ("0", "1") for w in words[:LEVELS]):
        return None
    return words[LEVELS], words[LEVELS + 1]


def _at_bit(level: int, bit: str) -> str:
    if not 0 <= level < LEVELS:
        raise ValueError(f"ladder level must be 0..{LEVELS - 1}, got {level}")
    stars = ["*"] * (LEVELS - 1 - level)
    return ".".join([*stars, bit, "#"])
