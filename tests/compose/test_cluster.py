"""docker-compose.cluster.yml for real: three clustered nodes, one killed mid-stream.

The stack comes up with ``up --build --wait --scale welcome-email=3``; events
are published with confirms through the three published AMQP ports (the
publisher fails over like the app's), a node that serves consumers is
``docker kill``ed while they flow, and every confirmed event must reach the
outbox: quorum queues on three nodes lose nothing a broker confirmed. Then the
queue must come to rest (nothing ready, nothing unacked): a consumer that
reconnected but never acks again holds its prefetch forever while its health
check stays green, and the other replicas would hide it from the outbox alone
(docs/operations.md: what stalled this test on RabbitMQ 4.0).
"""

from __future__ import annotations

import json
import time
import urllib.request
from base64 import b64encode
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from compose_support import FIGURES, Stack, Stream, docker, events_handled, wait_for

pytestmark = pytest.mark.compose

NODES = ["rabbit1", "rabbit2", "rabbit3"]
QUEUE_PATH = "/api/queues/%2F/events.welcome-email"
CONSUMER_INFO = ("queue_name", "channel_pid", "prefetch_count", "active", "activity_status")
#: A channel's own count of unacked deliveries: a stuck consumer's channel holds its prefetch.
CHANNEL_INFO = ("pid", "name", "consumer_count", "messages_unacknowledged", "prefetch_count")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Stack]:
    stack = Stack("docker-compose.cluster.yml", NODES)
    try:
        seconds = stack.up("--scale", "welcome-email=3")
        FIGURES["cluster up --build --wait (3 nodes, 8 consumers)"] = f"{seconds:.0f} s"
        yield stack
    finally:
        stack.down()


def consumer_nodes(stack: Stack, via: str) -> Counter[str]:
    """Node name -> how many subscriber connections of the app it serves (management API)."""
    connections = _management(stack, via, "/api/connections")
    names = [
        (c["node"].split("@")[1], (c.get("client_properties") or {}).get("connection_name", ""))
        for c in connections
    ]
    # "hubbub consume NAME[ (host pid N)]": not the queue-depth poller's connection
    # ("hubbub consume (queue depth)") nor the one publishing retry copies ("(copies, ...").
    return Counter(
        node
        for node, name in names
        if name.startswith("hubbub consume ")
        and not name.startswith("hubbub consume (")
        and "(copies" not in name
    )


def test_three_nodes_cluster_and_consumers_spread(cluster: Stack) -> None:
    (rabbit1,) = cluster.containers("rabbit1")
    status = json.loads(
        docker("exec", rabbit1, "rabbitmqctl", "cluster_status", "--formatter", "json")
    )
    assert sorted(status["running_nodes"]) == [f"rabbit@{n}" for n in NODES]
    spread = consumer_nodes(cluster, "rabbit1")
    assert sum(spread.values()) == 8, spread  # 3 welcome-email replicas + 5 subscribers
    assert len(spread) >= 2, spread


def test_a_node_killed_mid_stream_loses_no_confirmed_event(cluster: Stack) -> None:
    spread = consumer_nodes(cluster, "rabbit1")
    victim_node = spread.most_common(1)[0][0]  # the node serving the most consumers
    survivor = next(n for n in NODES if n != victim_node)
    (victim,) = cluster.containers(victim_node)
    replicas = cluster.containers("welcome-email")
    before = sum(events_handled(c) for c in replicas)

    stream = Stream(cluster.urls(), total=1000, pause=0.05)
    stream.start()
    wait_for(
        "the stream being handled",
        lambda: sum(events_handled(c) for c in replicas) > before + 50,
        90,
    )
    assert stream.is_alive()  # mid-stream
    leader = _management(cluster, victim_node, QUEUE_PATH).get("leader")
    print(f"killing {victim_node}: consumers on {dict(spread)}, queue leader {leader}")
    docker("kill", victim)
    killed = time.monotonic()
    stream.join(240)
    assert not stream.is_alive()
    ids = stream.confirmed
    assert len(ids) == 1000
    timeline = Timeline(cluster, survivor, replicas, killed)
    try:
        wait_for("every confirmed event handled", lambda: timeline.handled(ids), 180, 1.0)
    except AssertionError as exc:
        print(timeline.report(), diagnose(cluster, victim_node), sep="\n")
        missing = len(set(ids) - set(cluster.handled("welcome-email", ids)))
        state = cluster.compose("ps", "-a", "--format", "{{.Name}} {{.Status}}")
        queue = _management(cluster, survivor, QUEUE_PATH)
        counts = {k: queue.get(k) for k in ("messages_ready", "messages_unacknowledged")}
        counts.update(consumers=queue.get("consumers"), leader=queue.get("leader"))
        raise AssertionError(
            f"{exc}: {missing} of {len(ids)} missing, killed {victim_node}, consumers on "
            f"{dict(consumer_nodes(cluster, survivor))}, queue {counts}\n{state}"
        ) from exc
    FIGURES["node killed mid-stream: all 1000 confirmed handled"] = (
        f"{time.monotonic() - killed:.0f} s after the kill"
    )
    FIGURES["publishes that failed over the kill (not confirmed, re-sent)"] = str(
        stream.unconfirmed
    )
    # Every event handled is not enough: a replica stuck with its prefetch unacked is
    # hidden by the two others. Nothing may stay ready or unacked (the management
    # API's counts lag by up to about 10 s).
    try:
        wait_for("the queue at rest (0 ready, 0 unacked)", timeline.at_rest, 60, 2.0)
    except AssertionError as exc:
        print(timeline.report(), diagnose(cluster, victim_node), sep="\n")
        raise AssertionError(f"{exc}: {timeline.last}") from exc
    FIGURES["node killed mid-stream: queue at rest (0 ready, 0 unacked)"] = (
        f"{time.monotonic() - killed:.0f} s after the kill"
    )
    print(timeline.report())
    # The consumers the dead node served moved to the two others.
    wait_for(
        "every consumer back",
        lambda: sum(consumer_nodes(cluster, survivor).values()) == 8,
        120,
        1.0,
    )
    after = consumer_nodes(cluster, survivor)
    assert victim_node not in after, after


class Timeline:
    """What the test saw after the kill, every 10 s: events handled, the queue's counts
    (management API of a surviving node), each replica's handled total."""

    def __init__(self, stack: Stack, survivor: str, replicas: list[str], killed: float) -> None:
        self.stack, self.survivor, self.replicas, self.killed = stack, survivor, replicas, killed
        self.lines: list[str] = []
        self.last: dict[str, Any] = {}
        self._noted = -10.0

    def handled(self, ids: list[str]) -> bool:
        done = set(self.stack.handled("welcome-email", ids))
        self._note(f"{len(done)} of {len(ids)} handled")
        return done == set(ids)

    def at_rest(self) -> bool:
        queue = _management(self.stack, self.survivor, QUEUE_PATH)
        self.last = {k: queue.get(k) for k in ("messages_ready", "messages_unacknowledged")}
        self._note("all handled")
        return self.last == {"messages_ready": 0, "messages_unacknowledged": 0}

    def report(self) -> str:
        return "\n".join(self.lines)

    def _note(self, what: str) -> None:
        now = time.monotonic() - self.killed
        if now - self._noted < 10:
            return
        self._noted = now
        try:
            queue = _management(self.stack, self.survivor, QUEUE_PATH)
        except OSError as exc:
            queue = {"error": str(exc)}
        counts = {
            k: queue.get(k)
            for k in ("messages_ready", "messages_unacknowledged", "consumers", "leader")
        }
        per_replica = [_handled_or_none(c) for c in self.replicas]
        self.lines.append(
            f"{now:.0f}s after the kill: {what}; queue {counts}; handled per replica {per_replica}"
        )


def diagnose(stack: Stack, victim_node: str) -> str:
    """What the surviving brokers and the welcome-email replicas say, for a failure."""
    out: list[str] = []

    def run(*args: str) -> None:
        try:
            text = docker(*args, timeout=60, check=False)
        except Exception as exc:  # a report: best effort
            text = str(exc)
        out.append(f"$ docker {' '.join(args)}\n{text}")

    for node in NODES:
        if node != victim_node:
            (container,) = stack.containers(node)
            run("exec", container, "rabbitmqctl", "-q", "list_consumers", *CONSUMER_INFO)
            run("exec", container, "rabbitmqctl", "-q", "list_channels", *CHANNEL_INFO)
    for container in stack.containers("welcome-email"):
        run("exec", container, "hubbub", "health")
    return "\n".join(out)


def _handled_or_none(container: str) -> int | None:
    try:
        return events_handled(container)
    except AssertionError:  # a replica that does not answer: shown as None
        return None


def _management(stack: Stack, node: str, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.management[node]}{path}",
        headers={"Authorization": "Basic " + b64encode(b"guest:guest").decode()},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
