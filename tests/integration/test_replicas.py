"""``replicas`` against the real (single-node) broker: declared, planned, fixed at creation.

On one node the broker caps the group size at 1, but the argument is still
stored on every queue, so plan/apply treat it like any other argument. The
3-node behaviour (members on every node, node loss) is in tests/cluster.
"""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from hubbub.cli.main import cli
from hubbub.errors import DeclarationError
from hubbub.topology import apply, layout, loader, make_plan

pytestmark = pytest.mark.integration


def spec(hub: str, **more: object) -> dict:
    subscriber = {"handler": "json:dumps", "topics": ["job.#"]}
    return {"hub": hub, "subscribers": {"s": subscriber}, **more}


def test_every_queue_is_declared_with_the_replicas_and_the_plan_then_is_empty(
    broker_url, hub_name, declare, tmp_path
):
    topology = declare(spec(hub_name, replicas=3))
    assert make_plan(topology, [broker_url]).changes == ()  # the broker keeps the argument
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(spec(hub_name, replicas=5)))
    result = CliRunner().invoke(cli, ["topology", "plan", "--file", str(path), "--url", broker_url])
    conflicts = [line for line in result.output.splitlines() if line.startswith("! conflict")]
    assert len(conflicts) == len(layout(topology).queues)
    assert "x-quorum-initial-group-size is 3 on the broker, the topology needs 5" in conflicts[0]
    assert "set replicas: 3" in conflicts[0]
    with pytest.raises(DeclarationError, match="x-quorum-initial-group-size"):
        apply(loader.from_mapping(spec(hub_name, replicas=5)), [broker_url])


def test_plan_shows_the_replicas_of_the_queues_it_would_create(broker_url, hub_name, tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(spec(hub_name, replicas=3)))
    result = CliRunner().invoke(
        cli, ["topology", "plan", "--file", str(path), "--url", broker_url, "--verbose"]
    )
    assert result.exit_code == 0, result.output
    creates = [line for line in result.output.splitlines() if line.startswith("+ create queue")]
    assert len(creates) == 3 + 28
    assert all("quorum-initial-group-size=3" in line for line in creates)
    summary = CliRunner().invoke(
        cli, ["topology", "plan", "--file", str(path), "--url", broker_url]
    )
    assert "(3 replicas each)" in summary.output
