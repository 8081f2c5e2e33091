"""Destroying a hub leaves a hub whose name starts with its name alone: hub ``events``'
subscriber ``staging`` has a *queue* ``events.staging``, hub ``events.staging`` an
*exchange* of that name; and a hub name ending ``.wait`` is refused (its names would
collide with the wait queues of the hub before the dot)."""

from __future__ import annotations

import pika.exceptions
import pytest
import yaml
from click.testing import CliRunner
from core_support import channel

from hubbub.cli.main import cli
from hubbub.errors import TopologyError
from hubbub.topology.names import HubNames

pytestmark = pytest.mark.integration


def exchange_exists(url: str, name: str) -> bool:
    try:
        with channel(url) as ch:
            ch.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    return True


@pytest.mark.parametrize("suffix", ["staging", "wait"])
def test_destroying_a_hub_keeps_the_exchanges_of_a_hub_named_after_it(
    declare, hub_name, broker_url, tmp_path, suffix
):
    try:
        neighbour = declare(
            {
                "hub": f"{hub_name}.{suffix}",
                "subscribers": {"s": {"handler": "x:y", "topics": ["a"]}},
            }
        )
    except TopologyError:
        return  # refusing such a hub name is a fix too
    path = tmp_path / "topology.yaml"
    spec = {"hub": hub_name, "subscribers": {"mine": {"handler": "x:y", "topics": ["a"]}}}
    path.write_text(yaml.safe_dump(spec))
    declare(spec)

    done = CliRunner().invoke(
        cli, ["topology", "destroy", "--file", str(path), "--url", broker_url, "--yes", "--force"]
    )
    assert done.exit_code == 0, done.output

    names: HubNames = neighbour.names
    for exchange in (names.exchange, names.delivery, names.dead_letter_exchange):
        assert exchange_exists(broker_url, exchange), f"{exchange} was destroyed with {hub_name}"
