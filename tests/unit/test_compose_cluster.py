"""docker-compose.cluster.yml, checked without a Docker engine.

The file is parsed as compose would (YAML anchors and merge keys, then
``${VAR:-default}`` interpolation from an empty environment) and held to the
cluster layout docs/cluster.md describes: three RabbitMQ nodes sharing one
cookie and one peer-discovery config that names all three, started in a
chain, and hubbub services that list every node and run the cluster's
topology (the example app's, with replicas).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from hubbub.connection import resolve_urls
from hubbub.topology import loader

REPO = Path(__file__).resolve().parents[2]
NODES = ["rabbit1", "rabbit2", "rabbit3"]
CONFIG_MOUNT = "/etc/rabbitmq/conf.d/"


def interpolate(value, env):
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``$$`` substitution."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    text = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m[1]) or (m[2] or ""), value)
    return text.replace("$$", "$")


@pytest.fixture(scope="module")
def compose():
    raw = yaml.safe_load((REPO / "docker-compose.cluster.yml").read_text())
    return interpolate(raw, {})


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def mounts(service):
    """``{source: target}`` of a service's volumes (``src:dst[:mode]``)."""
    return dict(v.split(":")[:2] for v in service.get("volumes", []))


def test_three_management_nodes_with_their_own_names_ports_and_data(services, compose):
    nodes = [services[name] for name in NODES]
    assert all(n["image"].startswith("rabbitmq:") and "management" in n["image"] for n in nodes)
    assert [n["hostname"] for n in nodes] == NODES  # node names rabbit@<hostname>
    data = [src for n in nodes for src, dst in mounts(n).items() if dst == "/var/lib/rabbitmq"]
    assert len(set(data)) == 3 and set(data) <= set(compose["volumes"])
    host_ports = [p.split(":")[0] for n in nodes for p in n["ports"]]
    assert len(host_ports) == len(set(host_ports)) == 6


def test_the_nodes_share_one_cookie(services):
    cookies = {services[name]["environment"]["RABBITMQ_ERLANG_COOKIE"] for name in NODES}
    assert len(cookies) == 1 and all(cookies)
    with_secret = interpolate(
        yaml.safe_load((REPO / "docker-compose.cluster.yml").read_text()),
        {"HUBBUB_ERLANG_COOKIE": "s3cret"},
    )
    assert {with_secret["services"][n]["environment"]["RABBITMQ_ERLANG_COOKIE"] for n in NODES} == {
        "s3cret"
    }


def test_every_node_mounts_the_peer_discovery_config_naming_all_three(services):
    for name in NODES:
        sources = [
            src for src, dst in mounts(services[name]).items() if dst.startswith(CONFIG_MOUNT)
        ]
        assert sources == ["./deploy/cluster/rabbitmq.conf"], name
    config = (REPO / "deploy/cluster/rabbitmq.conf").read_text()
    settings = dict(
        line.split(" = ", 1) for line in config.splitlines() if line and not line.startswith("#")
    )
    assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {
        v for k, v in settings.items() if k.startswith("cluster_formation.classic_config.nodes.")
    }
    assert listed == {f"rabbit@{name}" for name in NODES}


def test_nodes_start_together_and_topology_waits_for_all(services):
    # A node in peer discovery waits for the nodes it lists: a start-up chain
    # (rabbit2 once rabbit1 is healthy) never came up on RabbitMQ 4.0.
    for name in NODES:
        assert "depends_on" not in services[name], name
    assert services["topology"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in NODES
    }


def hubbub_services(services):
    return {name: s for name, s in services.items() if name not in NODES}


def test_every_hubbub_service_lists_the_three_nodes(services):
    for name, service in hubbub_services(services).items():
        urls = resolve_urls(service["environment"]["HUBBUB_URL"])
        assert [re.search(r"@([^:/]+)", u)[1] for u in urls] == NODES, name


def test_the_consumers_run_every_subscriber_of_the_clusters_topology(services):
    topology_file = "/etc/hubbub/topology.yaml"
    for name, service in hubbub_services(services).items():
        assert service["environment"]["HUBBUB_TOPOLOGY"] == topology_file, name
        assert mounts(service)["./deploy/cluster/topology.yaml"] == topology_file, name
    cluster = loader.load(REPO / "deploy/cluster/topology.yaml", check_handlers=True)
    consumers = {
        s["command"][-1] for s in hubbub_services(services).values() if s["command"][0] == "consume"
    }
    assert consumers == {s.name for s in cluster.subscribers}
    assert services["topology"]["command"] == ["topology", "apply"]


def test_the_clusters_topology_is_the_example_apps_with_three_replicas():
    example = loader.load(REPO / "example_app/topology.yaml")
    cluster = loader.load(REPO / "deploy/cluster/topology.yaml")
    assert cluster.replicas == 3
    assert cluster == replace(example, replicas=3)
