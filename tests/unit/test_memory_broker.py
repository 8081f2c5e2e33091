"""The in-memory broker's RabbitMQ rules, on hand-made layouts (the hub's own: the contract)."""

from __future__ import annotations

import pytest

from hubbub.errors import PublishError
from hubbub.message import Message, Outbound
from hubbub.topology.layout import Binding, Exchange, Layout, Queue
from hubbub.topology.names import HubNames
from hubbub.transport.memory.broker import MemoryBroker

NOW = [1000.0]


def broker(exchanges, queues, bindings) -> MemoryBroker:
    b = MemoryBroker(lambda: NOW[0])
    b.declare(Layout(HubNames("h"), tuple(exchanges), tuple(queues), tuple(bindings)))
    return b


def keys(b: MemoryBroker, queue: str) -> list[str]:
    return [m.routing_key for m in b.messages(queue)]


def test_a_queue_gets_one_copy_however_many_paths_match():
    b = broker(
        [Exchange("x", "topic"), Exchange("y", "topic")],
        [Queue("q")],
        [
            Binding("x", "q", "a.*"),
            Binding("x", "q", "#"),
            Binding("x", "y", "a.#", "exchange"),
            Binding("y", "q", "a.b"),
        ],
    )
    assert b.publish(Outbound("x", "a.b", Message(b"1"))) == ["q"]
    assert keys(b, "q") == ["a.b"]


def test_the_alternate_exchange_takes_what_the_bindings_do_not():
    b = broker(
        [Exchange("alt", "fanout"), Exchange("x", "direct", (("alternate-exchange", "alt"),))],
        [Queue("parked"), Queue("q")],
        [Binding("alt", "parked", ""), Binding("x", "q", "k")],
    )
    b.publish(Outbound("x", "k", Message(b"")))
    b.publish(Outbound("x", "other", Message(b"")))
    assert (keys(b, "q"), keys(b, "parked")) == (["k"], ["other"])


def test_ttl_queues_dead_letter_in_expiry_order_with_x_death():
    NOW[0] = 1000.0
    ttl = lambda ms, dlx: (  # noqa: E731
        ("x-dead-letter-exchange", dlx),
        ("x-message-ttl", ms),
    )
    b = broker(
        [Exchange("in", "direct"), Exchange("out", "fanout")],
        [Queue("slow", ttl(3000, "out")), Queue("fast", ttl(1000, "out")), Queue("done")],
        [Binding("in", "slow", "slow"), Binding("in", "fast", "fast"), Binding("out", "done", "")],
    )
    b.publish(Outbound("in", "slow", Message(b"", headers={"mine": 1})))
    b.publish(Outbound("in", "fast", Message(b"")))
    assert b.next_expiry() == 1001.0
    NOW[0] = 1002.0
    assert b.expire() == 1
    assert keys(b, "done") == ["fast"]
    NOW[0] = 1003.0
    assert b.expire() == 1 and b.next_expiry() is None
    _, second = b.messages("done")
    assert second.routing_key == "slow" and second.message.headers["mine"] == 1
    (death,) = second.message.headers["x-death"]
    assert (death["queue"], death["reason"], death["count"], death["time"]) == (
        "slow",
        "expired",
        1,
        1003,
    )


def test_queues_hold_separate_copies_and_take_removes_only_what_is_wanted():
    b = broker(
        [Exchange("x", "fanout")],
        [Queue("a"), Queue("b")],
        [Binding("x", "a", ""), Binding("x", "b", "")],
    )
    for n in range(3):
        b.publish(Outbound("x", str(n), Message(b"", headers={"n": n})))
    b.messages("a")[0].message.headers["n"] = "changed"
    assert b.messages("b")[0].message.headers["n"] == 0
    assert [m.routing_key for m in b.take("a", lambda m: m.routing_key != "1")] == ["0", "2"]
    assert keys(b, "a") == ["1"] and b.get("a").routing_key == "1" and b.get("a") is None


def test_publishing_to_a_missing_exchange_fails_like_the_broker():
    b = broker([], [Queue("q")], [])
    with pytest.raises(PublishError, match="does not exist"):
        b.publish(Outbound("nope", "k", Message(b"")))
    assert b.publish(Outbound("", "q", Message(b""))) == ["q"]  # the default exchange


def test_a_delivery_stays_unacked_until_acked_or_requeued_at_the_head_in_order():
    b = broker([], [Queue("q")], [])
    for key in ("1", "2", "3"):
        b.publish(Outbound("", "q", Message(key.encode())))
    (t1, m1), (t2, _) = b.deliver("q"), b.deliver("q")
    assert (m1.routing_key, m1.redelivered) == ("q", False)
    assert [m.message.body for m in b.messages("q")] == [b"3"] and b.unacked("q") == 2
    b.ack(t1)
    b.ack(t1)  # a tag settled twice: the second is ignored
    b.requeue([t2])
    assert [(m.message.body, m.redelivered) for m in b.messages("q")] == [
        (b"2", True),
        (b"3", False),
    ]
    assert b.unacked("q") == 0
    held = [b.deliver("q"), b.deliver("q")]
    b.requeue([tag for tag, _ in reversed(held)])  # back in their order, whatever the order given
    assert [m.message.body for m in b.messages("q")] == [b"2", b"3"]
    assert b.deliver("q") is not None


def test_a_redeclared_layout_keeps_what_is_unacked():
    b = broker([], [Queue("q")], [])
    b.publish(Outbound("", "q", Message(b"kept")))
    tag, _ = b.deliver("q")
    b.declare(Layout(HubNames("h"), (), (Queue("q"),), ()))
    b.requeue([tag])
    assert [m.message.body for m in b.messages("q")] == [b"kept"]
