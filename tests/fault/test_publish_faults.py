"""Publishing when the broker misbehaves: alarms, frozen links, silent ports, death mid-batch.

Every broken broker here is this module's own node (``node``), or a socket
of the test's own; the shared broker is never alarmed or stopped. Each test
prints what it measured (run with ``-s``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pika
import pytest
from core_support_fault import cli, consume_ids
from fault_support import Tally, declare_on, recording_spec, wait_for
from freezing_proxy import FreezingProxy

from hubbub.connection import DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT
from hubbub.consumers.observer import Observer
from hubbub.consumers.worker import Worker
from hubbub.errors import BrokerConnectionError, PublishConnectionError, PublishError
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.testing.broker import unique_name
from hubbub.transport.pika.params import parameters
from hubbub.transport.pika.publisher import DEFAULT_WINDOW
from tests.support.node import RabbitNode

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitNode]:
    """A node of this module's own: it is alarmed, and stopped mid-batch (the last test)."""
    with RabbitNode(unique_name("hubbub-publish")) as private:
        yield private


# -- alarms -------------------------------------------------------------------


def alarms(node: RabbitNode) -> str:
    return node.ctl("eval", "rabbit_alarm:get_alarms().")


def test_a_publish_the_broker_blocks_says_why_within_the_timeout(node, cleanup):
    hub = unique_name("fault-alarm")
    cleanup(node.url, declare_on(node.url, recording_spec(hub)))
    publisher = Publisher(hub, url=node.url, confirm_timeout=2)
    publisher.publish("job.before", {})  # connected before the alarm
    started = time.monotonic()
    assert cli("publish", "--hub", hub, "job.before", "{}", url=node.url).returncode == 0
    cli_overhead = time.monotonic() - started  # starting Python, connecting, a confirm
    node.ctl("set_vm_memory_high_watermark", "0.0000001")
    try:
        wait_for(lambda: "memory" in alarms(node), 30, "the memory alarm")
        started = time.monotonic()
        with pytest.raises(PublishError) as caught:
            publisher.publish("job.blocked", {}, message_id="blocked-1")
        api_took = time.monotonic() - started
        started = time.monotonic()
        result = cli("publish", "--hub", hub, "job.cli", "{}", "--timeout", "2", url=node.url)
        cli_took = time.monotonic() - started
    finally:
        node.ctl("set_vm_memory_high_watermark", "0.4")
        wait_for(lambda: "memory" not in alarms(node), 30, "the alarm to clear")
        publisher.close()
    text = str(caught.value)
    assert text.startswith("the broker is blocking publishers (low on memory: a resource alarm")
    assert "did not confirm within 2 s" in text and caught.value.failed == ["blocked-1"]
    assert 2 <= api_took < 3.5
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the broker is blocking publishers")
    assert cli_took < cli_overhead + 2 + 1.5  # the --timeout, then one line and out
    print(
        f"\nalarm: publish failed after {api_took:.2f}s, the CLI after {cli_took:.2f}s "
        f"(a CLI publish without alarm: {cli_overhead:.2f}s)"
    )


# -- a frozen link -------------------------------------------------------------


class LostAt(Observer):
    def __init__(self) -> None:
        self.at: float | None = None

    def disconnected(self) -> None:
        self.at = self.at or time.monotonic()


def test_a_frozen_link_is_noticed_by_publisher_and_consumer_within_20_s(node, cleanup):
    hub = unique_name("fault-frozen")
    topology = declare_on(node.url, recording_spec(hub))
    cleanup(node.url, topology)
    with FreezingProxy(node.port) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
        publisher = Publisher(hub, url=url, confirm_timeout=60)  # only heartbeats can tell
        publisher.publish("job.before", {})
        lost = LostAt()
        worker = Worker(topology, {"work": Tally()}, url=url, observer=lost)
        consumer = threading.Thread(target=worker.run, daemon=True)
        consumer.start()
        assert worker.consuming.wait(15)
        proxy.freeze()
        frozen = time.monotonic()
        try:
            with pytest.raises(PublishError, match="closed before the broker confirmed"):
                publisher.publish("job.during", {})
            publisher_noticed = time.monotonic() - frozen
            wait_for(lambda: lost.at is not None, 30, "the consumer to notice")
        finally:
            proxy.close()  # reconnections through it fail at once from here on
            worker.stop()
            consumer.join(30)
            publisher.close()
    consumer_noticed = (lost.at or 0) - frozen
    # pika checks every heartbeat + 5 s: noticed within two checks.
    limit = 2 * (DEFAULT_HEARTBEAT + 5) + 1
    assert publisher_noticed < limit and consumer_noticed < limit
    print(
        f"\nfrozen link (heartbeat {DEFAULT_HEARTBEAT}s): the publisher noticed after "
        f"{publisher_noticed:.1f}s, the consumer after {consumer_noticed:.1f}s"
    )


# -- a port that accepts and never answers -------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for sock in held:
        sock.close()


def test_the_connect_timeout_covers_the_amqp_handshake_by_default():
    (params,) = parameters(["amqp://guest:guest@127.0.0.1:5672/%2F"], name="t")
    assert params.stack_timeout == params.socket_timeout == DEFAULT_CONNECT_TIMEOUT == 10


def test_a_silent_port_fails_in_one_line_at_the_connect_timeout(silent_port):
    url = f"amqp://guest:s3cret@127.0.0.1:{silent_port}/%2F?stack_timeout=2"
    started = time.monotonic()
    with pytest.raises(PublishConnectionError) as caught:
        Publisher("h", url=url).publish("job", {}, message_id="m")
    took = time.monotonic() - started
    text = str(caught.value)
    assert isinstance(caught.value, BrokerConnectionError) and caught.value.failed == ["m"]
    assert "no AMQP handshake within 2 s" in text
    assert not any(w in text for w in ("PROTOCOL", "AF_INET", "ConnectionOpenAborted", "s3cret"))
    assert 2 <= took < 3.5
    started = time.monotonic()
    assert cli("publish", "--help", url=url).returncode == 0
    startup = time.monotonic() - started
    started = time.monotonic()
    result = cli("publish", "--hub", "h", "job", url=url)
    cli_took = time.monotonic() - started
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "no AMQP handshake within 2 s" in result.stderr
    assert cli_took < startup + 2 + 1.5
    print(
        f"\nsilent port: publish failed after {took:.2f}s, the CLI after {cli_took:.2f}s "
        f"(starting the CLI: {startup:.2f}s)"
    )


# -- the broker dies mid-batch (last: it restarts the node) ----------------------


class BreaksTheBrokerMidBatch(Publisher):
    """Stops or kills the broker while publish_many prepares its 40th chunk, 2,000 stored."""

    def __init__(self, node: RabbitNode, queue: str, hub: str, how: str) -> None:
        super().__init__(hub, url=node.url)
        self.node, self.queue, self.how, self.chunks = node, queue, how, 0

    def _prepare(self, events):  # type: ignore[no-untyped-def]
        self.chunks += 1
        if self.chunks == 40:
            wait_for(lambda: stored(self.node.url, self.queue) >= 2000, 30, "2,000 stored")
            if self.how == "kill":
                self.node.kill()  # kill -9: in-flight confirms are lost with the VM
            else:
                self.node.stop_app()  # clients are told, the node stays up
        return super()._prepare(events)


def stored(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def readable(url: str, queue: str) -> bool:
    try:
        stored(url, queue)
    except pika.exceptions.AMQPError:
        return False
    return True


@pytest.mark.parametrize("how", ["stop_app", "kill"])
def test_publish_many_when_the_broker_dies_mid_batch_lists_exactly_the_unconfirmed(
    node, cleanup, how
):
    hub = unique_name("fault-midbatch")
    cleanup(node.url, declare_on(node.url, recording_spec(hub)))
    queue = f"{hub}.work"
    batch = [OutgoingEvent("job.n", {"i": i}, message_id=f"e{i:05d}") for i in range(20000)]
    publisher = BreaksTheBrokerMidBatch(node, queue, hub, how)
    try:
        with pytest.raises(PublishError) as caught:
            publisher.publish_many(batch)
    finally:
        publisher.close()
        if how == "kill":
            node.start()
        else:
            node.start_app()
        wait_for(lambda: readable(node.url, queue), 60, "the queue back")
    failed = set(caught.value.failed)
    arrived = consume_ids(node.url, queue)
    ids = {e.message_id for e in batch}
    assert len(arrived) == len(set(arrived))  # nothing stored twice
    confirmed = ids - failed
    assert confirmed <= set(arrived), "a confirmed event is missing"
    assert failed | set(arrived) == ids  # republishing error.failed misses nothing
    lost_confirms = failed & set(arrived)  # stored, but the confirm was lost with the link
    assert len(lost_confirms) <= DEFAULT_WINDOW
    assert "were not confirmed" in str(caught.value) and "\n" not in str(caught.value)
    print(
        f"\nbroker {how} mid-batch: {len(confirmed)} confirmed, {len(failed)} in error.failed "
        f"({len(lost_confirms)} of them stored all the same: their confirms were lost)"
    )
