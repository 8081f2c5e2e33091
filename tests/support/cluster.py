"""A private RabbitMQ cluster on one machine, for tests that lose a node.

:class:`RabbitCluster` boots ``size`` :class:`~tests.support.node.RabbitNode`
nodes at once (each with its own node name, AMQP and distribution ports,
data and log directories, all sharing one Erlang cookie), then joins the
others to the first with ``rabbitmqctl join_cluster``: about 14 s for three
nodes on a 2-core machine. It never touches a shared broker; its ports and
names are unique, so concurrent test runs do not collide. Everything it
wrote is deleted by :meth:`RabbitCluster.stop`.

A node taken down with :meth:`~RabbitCluster.crash` (``kill -9``) or
:meth:`~RabbitCluster.shut_down` (a clean stop of its VM) keeps its data;
:meth:`~RabbitCluster.restart` boots it again, it rejoins on its own, and the
call returns once every quorum queue has all its members back online.

Not thread-safe: drive a cluster from one thread.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.node import NodeError, RabbitNode


@dataclass(frozen=True, slots=True)
class QuorumQueue:
    """Where a quorum queue lives: its leader and members (node names)."""

    name: str
    leader: str
    members: tuple[str, ...]
    online: tuple[str, ...]


class RabbitCluster:
    """``size`` private nodes joined in one cluster; ``with RabbitCluster() as c: c.url``."""

    def __init__(
        self,
        size: int = 3,
        *,
        name: str | None = None,
        ports: Sequence[int] = (),
        base_dir: str | Path | None = None,
    ) -> None:
        if size < 1 or (ports and len(ports) != size):
            raise ValueError("a cluster needs at least one node and one AMQP port per node")
        self.name = name or f"hubbub-cluster-{secrets.token_hex(3)}"
        self._own_dir = base_dir is None
        self.dir = Path(base_dir or tempfile.mkdtemp(prefix=f"{self.name}-"))
        cookie = secrets.token_hex(16)
        self.nodes = [
            RabbitNode(
                f"{self.name}-{i + 1}",
                port=ports[i] if ports else None,
                cookie=cookie,
                base_dir=self.dir / f"node{i + 1}",
            )
            for i in range(size)
        ]

    # -- addresses --------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """One AMQP URL per node, in node order."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: a ``HUBBUB_URL`` for the whole cluster."""
        return ",".join(self.urls)

    def node_named(self, nodename: str) -> RabbitNode:
        """The node called ``nodename`` (``name@localhost``)."""
        for node in self.nodes:
            if node.nodename == nodename:
                return node
        raise NodeError(f"no node {nodename!r} in cluster {self.name}")

    def node_at(self, address: str) -> RabbitNode:
        """The node listening on ``host:port`` (e.g. ``Worker.connected_to``)."""
        port = int(address.rpartition(":")[2])
        for node in self.nodes:
            if node.port == port:
                return node
        raise NodeError(f"no node of cluster {self.name} listens on {address}")

    def running(self) -> list[RabbitNode]:
        """The nodes accepting AMQP clients now."""
        return [node for node in self.nodes if node.accepting]

    # -- lifecycle --------------------------------------------------------

    def start(self, timeout: float = 120.0) -> RabbitCluster:
        """Boot every node (in parallel), join them to the first, wait for all to run."""
        try:
            _each(self.nodes, lambda node: node.start(timeout))
            seed = self.nodes[0]
            for node in self.nodes[1:]:
                node.stop_app()
                node.ctl("join_cluster", seed.nodename)
                node.start_app(timeout)
            self.wait_members(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node (in parallel) and delete the cluster's files."""
        _each(self.nodes, _stop_quietly)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def crash(self, node: RabbitNode) -> None:
        """``kill -9`` the node's VM: clients and peers see it vanish at once."""
        node.kill()

    def shut_down(self, node: RabbitNode) -> None:
        """Stop the node's VM cleanly (``rabbitmqctl stop``), keeping its data."""
        node.stop()

    def restart(self, node: RabbitNode, timeout: float = 120.0) -> None:
        """Boot a stopped node; returns once it runs and its queue members are back online."""
        node.start(timeout)
        self.wait_members(timeout)
        self.wait_online(timeout)

    # -- observing --------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl ARGS`` on a running node."""
        running = self.running()
        if not running:
            raise NodeError(f"no node of cluster {self.name} is running")
        return running[0].ctl(*args, timeout=timeout)

    def quorum_queues(self) -> dict[str, QuorumQueue]:
        """Every quorum queue with its leader and members, read from a running node."""
        out = self.ctl(
            "list_queues", "name", "type", "leader", "members", "online", "--formatter", "json"
        )
        rows = json.loads(out[out.index("[") :])
        return {
            r["name"]: QuorumQueue(
                r["name"], str(r["leader"]), tuple(r["members"]), tuple(r["online"])
            )
            for r in rows
            if r.get("type") == "quorum"
        }

    def leader(self, queue: str) -> RabbitNode:
        """The node leading quorum queue ``queue`` now."""
        found = self.quorum_queues().get(queue)
        if found is None:
            raise NodeError(f"no quorum queue {queue!r} in cluster {self.name}")
        return self.node_named(found.leader)

    def wait_members(self, timeout: float = 60.0) -> None:
        """Wait until every node is a running member of the cluster."""
        wanted = {node.nodename for node in self.nodes}
        _poll(lambda: wanted <= self._running_members(), timeout, "every node to run")

    def wait_online(self, timeout: float = 60.0) -> None:
        """Wait until every member of every quorum queue is online again."""
        _poll(
            lambda: all(set(q.members) <= set(q.online) for q in self.quorum_queues().values()),
            timeout,
            "every quorum queue member to be online",
        )

    def _running_members(self) -> set[str]:
        out = self.ctl("cluster_status", "--formatter", "json")
        return set(json.loads(out[out.index("{") :]).get("running_nodes", []))

    def __enter__(self) -> RabbitCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _each(nodes: Sequence[RabbitNode], action: Callable[[RabbitNode], object]) -> None:
    """Run ``action`` on every node at once; re-raise the first failure."""
    errors: list[BaseException] = []

    def run(node: RabbitNode) -> None:
        try:
            action(node)
        except BaseException as exc:  # re-raised below, on the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(node,), daemon=True) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _stop_quietly(node: RabbitNode) -> None:
    try:
        node.stop()
    except NodeError:
        node.kill()


def _poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except NodeError:
            pass  # a node is still booting: its CLI answers soon
        if time.monotonic() > deadline:
            raise NodeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.5)
