"""apply never plans from another broker's management API.

The private node listens for AMQP on its own port, but the management API
derived from its URL (127.0.0.1:15672) is the shared broker's. A plan from
there would list the wrong bindings to remove; apply must notice and declare
without one.
"""

from __future__ import annotations

import logging

import pytest

from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def test_apply_ignores_a_management_api_of_another_broker(node, caplog):
    topology = loader.from_mapping(
        {"hub": unique_name("t-private"), "subscribers": {"s": {"handler": "x:y", "topics": ["a"]}}}
    )
    with caplog.at_level(logging.WARNING, logger="hubbub.topology.sync"):
        result = apply(topology, [node.url])
    try:
        assert result is None  # declared, but without a plan
        assert any("belongs to cluster" in r.getMessage() for r in caplog.records)
    finally:
        delete_hub(node.url, topology)
