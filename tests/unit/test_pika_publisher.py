"""The pika publisher transport on scripted nodes: confirms, refusals, losses, fallbacks.

No socket: the connection is :mod:`fake_select`'s, run by the real
supervisor on the transport's own I/O thread; the test plays the broker on
that thread. Its channels lack pika's internals, so these tests also show
the fallback to pika's own ``basic_publish`` (the fast path's bytes are
``test_outbound.py``'s and the integration tests').
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import pytest
from fake_select import FakeChannel, FakeSelectConnection, Nodes
from pika.spec import BasicProperties

import hubbub.transport.pika.supervisor as supervisor_module
from hubbub.errors import BrokerConnectionError
from hubbub.message import Message, Outbound
from hubbub.transport.base import Pending
from hubbub.transport.pika import _internals
from hubbub.transport.pika.publisher import PikaPublisherTransport, UnroutableError

URLS = ["amqp://u:p@n1/%2F", "amqp://u:p@n2/%2F"]


@pytest.fixture
def nodes(monkeypatch: pytest.MonkeyPatch) -> Nodes:
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")
    monkeypatch.delenv(_internals.FAST_FRAMES_ENV, raising=False)
    monkeypatch.setattr(_internals, "_told", set())
    scripted = Nodes(n1="open", n2="open")
    monkeypatch.setattr(supervisor_module, "SelectConnection", scripted.connection)
    return scripted


@pytest.fixture
def transport(nodes: Nodes) -> Iterator[PikaPublisherTransport]:
    made = PikaPublisherTransport(URLS, name="test", window=2)
    yield made
    made.close(timeout=0)


def pending(key: str = "k", *, mandatory: bool = False) -> Pending:
    message = Message(b"{}", content_type="application/json", message_id=f"id-{key}")
    return Pending(Outbound("hub", key, message, mandatory), Future())


def on_io(connection: FakeSelectConnection, action: Callable[[], None]) -> None:
    """Run ``action`` on the connection's I/O thread, as the broker's frames would."""
    done = threading.Event()

    def run() -> None:
        action()
        done.set()

    connection.ioloop.add_callback_threadsafe(run)
    assert done.wait(5)


def published(channel: FakeChannel, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(channel.published) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(channel.published) == count


def error_of(message: Pending) -> BaseException | None:
    assert message.future is not None
    return message.future.exception(timeout=5)


def test_confirms_settle_each_message_and_the_window_holds_the_rest(transport, nodes):
    first, second, third = pending("a"), pending("b"), pending("c")
    transport.send_many([first, second, third])
    connection = nodes.connections[-1]
    channel = connection.channels[-1]
    published(channel, 2)  # the window: two in flight
    on_io(connection, lambda: channel.ack(2, multiple=True))
    assert error_of(first) is None and error_of(second) is None
    published(channel, 3)
    on_io(connection, lambda: channel.ack(3))
    assert error_of(third) is None
    exchange, key, body, props, mandatory = channel.published[0]
    assert (exchange, key, body, mandatory) == ("hub", "a", b"{}", False)
    assert isinstance(props, BasicProperties)  # pika's own path: converted at the edge
    assert props.message_id == "id-a" and props.content_type == "application/json"


def test_a_nack_and_a_return_fail_their_message_with_the_reason(transport, nodes):
    refused, unroutable = pending("r"), pending("u", mandatory=True)
    transport.send_many([refused, unroutable])
    connection = nodes.connections[-1]
    channel = connection.channels[-1]
    published(channel, 2)
    on_io(connection, lambda: channel.nack(1))
    on_io(connection, lambda: (channel.give_back("hub", "u"), channel.ack(2)))
    assert str(error_of(refused)) == (
        "the broker refused the message for 'hub' (routing key 'r'): not stored"
    )
    returned = error_of(unroutable)
    assert isinstance(returned, UnroutableError)
    assert str(returned) == ("no queue is bound for routing key 'u' on exchange 'hub' (NO_ROUTE)")


def test_a_missing_exchange_fails_its_messages_and_a_new_channel_takes_over(transport, nodes):
    lost = pending("x")
    transport.send_many([lost])
    connection = nodes.connections[-1]
    channel = connection.channels[-1]
    published(channel, 1)
    text = "NOT_FOUND - no exchange 'hub' in vhost '/'"
    on_io(connection, lambda: channel.close_by_broker(404, text))
    assert str(error_of(lost)) == (
        f"{text}: the exchange does not exist; run 'hubbub topology apply' first. "
        "The message was not stored"
    )
    later = pending("y")
    transport.send_many([later])
    published(connection.channels[-1], 1)
    assert len(connection.channels) == 2 and transport.live


def test_a_lost_connection_fails_what_it_held_and_the_next_send_goes_to_another_node(
    transport, nodes
):
    held, waiting = pending("a"), pending("c")
    transport.send_many([held, pending("b"), waiting])  # the window holds "c" back
    connection = nodes.connections[-1]
    published(connection.channels[-1], 2)
    frame = type("Frame", (), {"method": type("Blocked", (), {"reason": "low on memory"})})
    on_io(connection, lambda: connection.blocked(connection, frame))
    assert transport.blocked == "low on memory"
    on_io(connection, connection.lose)
    assert str(error_of(held)) == (  # pika closes the channels of a lost connection
        "the channel closed before the broker confirmed "
        "(Stream connection lost: ConnectionResetError(104))"
    )
    assert str(error_of(waiting)) == (
        "the connection to the broker closed before it confirmed "
        "(it was blocking publishers: low on memory, a resource alarm)"
    )
    deadline = time.monotonic() + 5
    while transport.live and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not transport.live
    transport.send_many([pending("b")])
    assert nodes.tried == ["n1", "n2"]


def test_an_unreachable_broker_raises_and_leaves_the_messages_unsettled(monkeypatch):
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")
    scripted = Nodes(n1="refused", n2="refused")
    monkeypatch.setattr(supervisor_module, "SelectConnection", scripted.connection)
    transport = PikaPublisherTransport(URLS, name="test")
    message = pending()
    with pytest.raises(BrokerConnectionError, match="connection refused"):
        transport.send_many([message])
    assert not message.settled and not message.future.done()
    assert scripted.tried == ["n1", "n2"]


def test_close_waits_for_the_confirms_and_the_transport_can_be_used_again(transport, nodes):
    message = pending()
    transport.send_many([message])
    connection = nodes.connections[-1]
    channel = connection.channels[-1]
    published(channel, 1)
    threading.Timer(0.1, lambda: on_io(connection, lambda: channel.ack(1))).start()
    transport.close(timeout=5)
    assert error_of(message) is None  # confirmed before the close
    assert connection.is_closed and not transport.live
    transport.send_many([pending("again")])
    assert transport.live and len(nodes.connections) == 2


def test_a_withdrawn_message_is_not_published(transport, nodes):
    withdrawn, kept = pending("w"), pending("k")
    assert withdrawn.future is not None and withdrawn.future.cancel()
    transport.send_many([withdrawn, kept])
    channel = nodes.connections[-1].channels[-1]
    published(channel, 1)
    assert [p[1] for p in channel.published] == ["k"]


def test_without_pikas_internals_the_fast_path_falls_back_and_says_so(transport, nodes, caplog):
    with caplog.at_level(logging.INFO, logger="hubbub.transport"):
        transport.send_many([pending()])
        published(nodes.connections[-1].channels[-1], 1)
    assert "publish frames: this pika lacks FakeChannel._raise_if_not_open" in caplog.text
    assert "using pika's basic_publish (correct, only slower)" in caplog.text
