"""Least-permission regexes match the hub's own names and nothing else."""

from __future__ import annotations

import re

from hubbub.topology import permissions
from hubbub.topology.names import HubNames

N = HubNames("events")


def allows(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def test_a_publisher_writes_the_hub_and_the_ladder_and_configures_and_reads_nothing():
    p = permissions.publisher(N)
    for name in ("events", N.level(0), N.level(27), N.delivery):
        assert allows(p.write, name), name
    for name in ("events.dlx", "events.welcome-email", "eventsx", "other", N.unrouted):
        assert not allows(p.write, name), name
    assert (p.configure, p.read) == ("^$", "^$")
    assert not allows(p.read, "events.welcome-email")


def test_a_consumer_reads_only_its_queues_and_may_dead_letter():
    p = permissions.consumer(N, ["welcome-email", "audit"])
    assert allows(p.read, "events.welcome-email") and allows(p.read, "events.audit")
    for name in ("events.welcome-email.dlq", "events.notify-sales", "events.welcome-emailx"):
        assert not allows(p.read, name), name
    assert allows(p.write, "events.dlx") and allows(p.write, N.level(5))
    assert p.configure == "^$"


def test_the_topology_admin_owns_every_name_of_its_hub_only():
    p = permissions.admin(N)
    for name in ("events", "events.unrouted", "events.s.dlq", N.level(3), N.delivery):
        assert allows(p.configure, name), name
    for name in ("events2", "hubbub.v1.events2.delivery", "orders"):
        assert not allows(p.configure, name), name


def test_the_command_line_quotes_the_patterns():
    line = permissions.publisher(N).command("orders-api", vhost="prod")
    assert line.startswith("rabbitmqctl set_permissions -p 'prod' 'orders-api' '^$' '^(events|")
