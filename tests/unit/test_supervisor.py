"""The pika transport's one connection lifecycle, on scripted nodes (no socket, no broker)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fake_select import FakeSelectConnection, Nodes

import hubbub.transport.pika.supervisor as supervisor_module
from hubbub.errors import BrokerConnectionError, HubbubError
from hubbub.transport.pika.supervisor import ON_NEXT_SEND, Reconnect, Supervisor

NODES = ["amqp://u:p@n1/%2F", "amqp://u:p@n2/%2F", "amqp://u:p@n3/%2F"]
QUICK = Reconnect(forever=True, first=0.001, cap=0.002)


class Recorder:
    """Connection events, and what to do on each open."""

    def __init__(self, on_open: Callable[[FakeSelectConnection], None] = lambda c: None) -> None:
        self.on_open = on_open
        self.events: list[tuple[str, Any]] = []
        self.thread: int | None = None

    def opened(self, connection: Any, node: str) -> None:
        self.thread = threading.get_ident()
        self.events.append(("opened", node))
        self.on_open(connection)

    def closed(self, reason: BaseException) -> None:
        self.events.append(("closed", type(reason).__name__))

    def blocked(self, reason: str | None) -> None:
        self.events.append(("blocked", reason))


@pytest.fixture
def nodes(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Nodes]:
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")

    def script(**behaviour: str) -> Nodes:
        scripted = Nodes(**behaviour)
        monkeypatch.setattr(supervisor_module, "SelectConnection", scripted.connection)
        return scripted

    return script


def test_a_consumer_tries_the_nodes_round_robin_and_reconnects_after_a_loss(nodes):
    scripted = nodes(n1="open", n2="refused", n3="open")
    supervisor = Supervisor(NODES, name="test", reconnect=QUICK)

    def lose_or_stop(connection: FakeSelectConnection) -> None:
        if len(scripted.tried) == 4:
            supervisor.stop(close=False)  # this connection is the last
        connection.lose()

    events = Recorder(lose_or_stop)
    supervisor.run(events)
    assert scripted.tried == ["n1", "n2", "n3", "n1"]
    assert events.events == [
        ("opened", "n1:5672"),
        ("closed", "StreamLostError"),
        ("opened", "n3:5672"),
        ("closed", "StreamLostError"),
        ("opened", "n1:5672"),
        ("closed", "StreamLostError"),
    ]


def test_a_publisher_run_ends_with_its_connection_and_the_next_starts_on_another_node(nodes):
    scripted = nodes(n1="open", n2="open", n3="open")
    supervisor = Supervisor(NODES, name="test", reconnect=ON_NEXT_SEND)
    for _ in range(3):
        supervisor.run(Recorder(lambda connection: connection.lose()))
    assert scripted.tried == ["n1", "n2", "n3"]  # the lost node is tried last


def test_no_node_answering_on_the_first_round_raises_once_each_was_tried(nodes):
    scripted = nodes(n1="refused", n2="refused", n3="refused")
    with pytest.raises(BrokerConnectionError) as info:
        Supervisor(NODES, name="test", reconnect=QUICK).run(Recorder())
    assert scripted.tried == ["n1", "n2", "n3"]
    assert "connection refused" in str(info.value)
    assert "u:p@" not in str(info.value)  # the URLs are masked


@pytest.mark.parametrize(
    ("behaviour", "fix"),
    [("credentials", "check the user and password"), ("vhost", "rabbitmqctl add_vhost")],
)
def test_wrong_credentials_or_vhost_are_raised_at_once_with_the_fix(nodes, behaviour, fix):
    scripted = nodes(n1=behaviour, n2="open", n3="open")
    with pytest.raises(BrokerConnectionError, match=fix):
        Supervisor(NODES, name="test", reconnect=QUICK).run(Recorder())
    assert scripted.tried == ["n1"]  # no other node will accept them either


def test_callbacks_posted_from_other_threads_run_on_the_io_thread_and_stop_ends_the_run(nodes):
    nodes(n1="open", n2="open", n3="open")
    supervisor = Supervisor(NODES, name="test", reconnect=QUICK)
    supervisor.call_soon(lambda: None)  # no connection yet: dropped, not queued
    ran_on: list[int] = []
    opened = threading.Event()
    events = Recorder(lambda connection: opened.set())
    runner = threading.Thread(target=supervisor.run, args=(events,))
    runner.start()
    assert opened.wait(5)
    supervisor.call_soon(lambda: ran_on.append(threading.get_ident()))
    assert supervisor.responsive(5)
    supervisor.stop()
    runner.join(5)
    assert not runner.is_alive()
    assert ran_on == [events.thread] and events.thread == runner.ident
    assert events.events[-1] == ("closed", "ConnectionClosedByClient")
    assert supervisor.stopping and supervisor.node is None
    assert not supervisor.responsive(0.05)  # nothing runs any more


def test_a_fatal_error_found_on_the_io_thread_is_raised_by_run(nodes):
    nodes(n1="open", n2="open", n3="open")
    supervisor = Supervisor(NODES, name="test", reconnect=QUICK)
    error = HubbubError("queue 'q' does not exist: run 'hubbub topology apply' first")
    events = Recorder(
        lambda connection: supervisor.call_later(0.01, lambda: supervisor.fail(error))
    )
    with pytest.raises(HubbubError) as info:
        supervisor.run(events)
    assert info.value is error


def test_blocked_and_unblocked_are_told_in_hubbub_terms(nodes):
    nodes(n1="open", n2="open", n3="open")
    supervisor = Supervisor(NODES, name="test", reconnect=ON_NEXT_SEND)

    def alarm(connection: FakeSelectConnection) -> None:
        assert connection.blocked is not None and connection.unblocked is not None
        frame = type("Frame", (), {"method": type("Blocked", (), {"reason": "low on memory"})})
        connection.blocked(connection, frame)
        connection.unblocked(connection, frame)
        connection.close()

    events = Recorder(alarm)
    supervisor.run(events)
    assert events.events[1:3] == [("blocked", "low on memory"), ("blocked", None)]


def test_the_backoff_doubles_up_to_its_cap_with_jitter():
    policy = Reconnect(forever=True, first=0.5, cap=30.0)
    assert 0.5 <= policy.wait(1) <= 1.0
    assert 2.0 <= policy.wait(3) <= 4.0
    assert 15.0 <= policy.wait(50) <= 30.0
