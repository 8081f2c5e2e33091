"""Cluster settings without a broker: node order, failover rotation, quorum replicas."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from fake_select import FakeSelectConnection, Nodes

import hubbub.producers.publisher as publisher_module
import hubbub.transport.pika.probe as probe_module
import hubbub.transport.pika.supervisor as supervisor_module
from hubbub import Hub
from hubbub.connection import node_order
from hubbub.consumers.worker import Worker
from hubbub.errors import BrokerConnectionError, ConfigurationError, TopologyError
from hubbub.topology.layout import layout
from hubbub.topology.loader import from_mapping, loads
from hubbub.topology.observe import ManagementAPI
from hubbub.topology.plan import Observed, ObservedQueue, plan
from hubbub.topology.sync import make_plan
from hubbub.transport.pika.consumer import PikaConsumerTransport
from hubbub.transport.pika.supervisor import ON_NEXT_SEND, Reconnect, Supervisor

NODES = ["amqp://u:p@n1/%2F", "amqp://u:p@n2/%2F", "amqp://u:p@n3/%2F"]
SPEC = {"hub": "events", "subscribers": {"mail": {"handler": "m:f", "topics": ["user.#"]}}}


# -- node order -------------------------------------------------------------


def test_each_client_starts_on_a_random_node_and_a_seed_makes_the_order_repeatable(monkeypatch):
    monkeypatch.delenv("HUBBUB_URL_ORDER", raising=False)
    firsts = Counter(node_order(NODES, random.Random(seed))[0] for seed in range(300))
    assert set(firsts) == set(NODES)
    assert min(firsts.values()) > 60  # about 100 each: the load spreads
    assert node_order(NODES, random.Random(7)) == node_order(NODES, random.Random(7))
    assert sorted(node_order(NODES, random.Random(7))) == sorted(NODES)


def test_the_given_order_is_kept_on_request(monkeypatch):
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")
    assert node_order(NODES, random.Random(1)) == NODES
    monkeypatch.setenv("HUBBUB_URL_ORDER", "sorted")
    with pytest.raises(ConfigurationError, match="HUBBUB_URL_ORDER='sorted'"):
        node_order(NODES)


@pytest.mark.parametrize(("lost", "tried_next"), [(["n1"], "n2"), (["n1", "n2", "n3"], "n1")])
def test_a_lost_node_moves_to_the_end_of_the_order(monkeypatch, lost, tried_next):
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")
    nodes = Nodes(n1="open", n2="open", n3="open")
    monkeypatch.setattr(supervisor_module, "SelectConnection", nodes.connection)
    supervisor = Supervisor(NODES, name="test", reconnect=ON_NEXT_SEND)
    events = Losing()
    for _ in lost:
        supervisor.run(events)
    assert nodes.tried == lost
    supervisor.run(events)
    assert nodes.tried[-1] == tried_next


def test_a_single_node_is_tried_again_after_its_loss(monkeypatch):
    nodes = Nodes(n1="open")
    monkeypatch.setattr(supervisor_module, "SelectConnection", nodes.connection)
    supervisor = Supervisor(NODES[:1], name="test", reconnect=ON_NEXT_SEND)
    supervisor.run(Losing())
    supervisor.run(Losing())
    assert nodes.tried == ["n1", "n1"]


class Losing:
    """Connection events: each connection is lost as soon as it opens."""

    def opened(self, connection, node):
        connection.lose()

    def closed(self, reason):
        pass

    def blocked(self, reason):
        pass


def test_a_publisher_reconnects_to_the_next_node_after_losing_one(monkeypatch):
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")
    nodes = Nodes(n1="open", n2="open", n3="open")
    monkeypatch.setattr(supervisor_module, "SelectConnection", nodes.connection)
    publisher = publisher_module.Publisher("events", url=",".join(NODES))
    transport = publisher.transport
    transport.connect()
    transport.connect()
    assert nodes.tried == ["n1"]  # a live connection is kept
    for _ in range(2):
        lost = nodes.connections[-1]
        lost.ioloop.add_callback_threadsafe(lost.lose)  # its connection to the node was lost
        deadline = time.monotonic() + 5
        while transport.live and time.monotonic() < deadline:
            time.sleep(0.01)
        transport.connect()
    publisher.abort()
    assert nodes.tried == ["n1", "n2", "n3"]  # each time the lost node is tried last


def test_a_consumer_tries_the_nodes_round_robin(monkeypatch):
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")
    monkeypatch.setattr(probe_module, "check_copy_targets", lambda *a, **k: None)
    topology = from_mapping(SPEC)
    worker = Worker(topology, {"mail": lambda event: None}, url=",".join(NODES))
    transport = worker.transport
    assert isinstance(transport, PikaConsumerTransport)
    transport._supervisor.reconnect = Reconnect(forever=True, first=0.001, cap=0.002)
    scripted = Nodes(n1="open", n2="refused", n3="open")  # n2 is down

    def connection(params, **callbacks):
        if len(scripted.tried) == 4:
            worker.stop()  # the fifth attempt is the last
        return scripted.connection(params, **callbacks)

    def channel(connection, on_open_callback):  # each node is lost as soon as it opens
        connection.ioloop.add_callback_threadsafe(connection.lose)

    monkeypatch.setattr(supervisor_module, "SelectConnection", connection)
    monkeypatch.setattr(FakeSelectConnection, "channel", channel)
    worker.run()
    tried = scripted.tried
    assert tried == ["n1", "n2", "n3", "n1", "n2"]


# -- replicas -----------------------------------------------------------------


def test_replicas_set_the_group_size_of_every_quorum_queue_ladder_included():
    queues = layout(from_mapping({**SPEC, "replicas": 3})).queues
    quorum = [q for q in queues if q.args.get("x-queue-type") == "quorum"]
    assert len(quorum) == len(queues) == 3 + 28  # unrouted, mail, mail.dlq, 28 levels
    assert all(q.args["x-quorum-initial-group-size"] == 3 for q in quorum)
    assert "hubbub.v1.events.delay.L27" in {q.name for q in quorum}


def test_without_replicas_the_broker_default_applies():
    queues = layout(from_mapping(SPEC)).queues
    assert not any("x-quorum-initial-group-size" in q.args for q in queues)


def test_replicas_are_read_from_the_file_and_validated():
    text = "hub: events\nreplicas: 5\nsubscribers:\n  mail: {handler: 'm:f', topics: [a.b]}\n"
    assert loads(text).replicas == 5
    with pytest.raises(TopologyError) as info:
        loads(text.replace("replicas: 5", "replicas: 0"))
    assert "replicas" in str(info.value)
    assert "must be at least 1" in str(info.value)


def test_plan_shows_the_replicas_of_each_queue_it_creates():
    shown = plan(layout(from_mapping({**SPEC, "replicas": 3})), Observed())
    details = {c.name: c.detail for c in shown.changes if c.kind == "queue"}
    assert "quorum-initial-group-size=3" in details["events.mail"]
    assert "quorum-initial-group-size=3" in details["hubbub.v1.events.delay.L00"]
    assert "+ create delay ladder: 28 exchanges, 28 queues, 56 bindings (3 replicas each)" in (
        shown.describe()
    )


def test_changing_replicas_of_existing_queues_is_a_conflict_with_a_way_out():
    wanted = layout(from_mapping({**SPEC, "replicas": 3}))
    existing = {
        q.name: ObservedQueue(dict(q.args), messages=4) for q in layout(from_mapping(SPEC)).queues
    }
    conflicts = plan(wanted, Observed(queues=existing)).conflicts
    assert {c.name for c in conflicts} == {q.name for q in wanted.queues}
    detail = next(c.detail for c in conflicts if c.name == "events.mail")
    assert "argument x-quorum-initial-group-size is not set on the broker" in detail
    assert "the topology needs 3" in detail
    assert "remove replicas from the file" in detail
    assert "rabbitmq-queues grow <node> all" in detail


def test_a_hub_built_in_code_takes_replicas_and_a_file_wins(tmp_path):
    hub = Hub("events", replicas=3)

    @hub.subscriber("mail", topics=["user.#"])
    def mail(event):
        return None

    assert hub.topology.replicas == 3
    from_file = Hub(topology=from_mapping({**SPEC, "replicas": 5}), replicas=3)
    assert from_file.topology.replicas == 5
    assert Hub(topology=from_mapping(SPEC), replicas=3).topology.replicas == 3


# -- plan on a cluster ----------------------------------------------------------


def test_plan_asks_the_next_nodes_management_api_when_the_first_is_down(monkeypatch):
    monkeypatch.delenv("HUBBUB_MANAGEMENT_URL", raising=False)
    asked: list[str] = []

    def get(api, path):
        asked.append(api.base)
        if "n3" not in api.base:
            raise BrokerConnectionError(f"cannot reach the RabbitMQ management API at {api.base}")
        return []  # an empty broker

    monkeypatch.setattr(ManagementAPI, "get", get)
    topology = from_mapping(SPEC)
    shown = make_plan(topology, NODES)
    assert {c.action for c in shown.changes} == {"create"}
    assert asked[:2] == ["http://n1:15672", "http://n2:15672"]
    with pytest.raises(BrokerConnectionError, match="http://n1:15672"):
        make_plan(topology, NODES[:2])
