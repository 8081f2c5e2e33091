"""The management client moves on to the next node when one cannot be reached."""

from __future__ import annotations

import pytest

from hubbub.errors import BrokerConnectionError
from hubbub.topology import observe
from hubbub.topology.observe import ManagementAPI


@pytest.fixture(autouse=True)
def _no_management_url(monkeypatch):
    """The derived addresses are under test: an API named in the environment would win."""
    monkeypatch.delenv("HUBBUB_MANAGEMENT_URL", raising=False)


URLS = ["amqp://u:pw@n1:5672/%2F", "amqp://u:pw@n2:5672/%2F", "amqp://u:pw@n3:5672/%2F"]


def test_an_unreachable_node_is_skipped_and_the_answering_one_is_kept(monkeypatch):
    asked = []

    def fake_get(base, auth, path):
        asked.append(base)
        if "n1" in base:
            raise observe._Unreachable(f"cannot reach {base}")
        return {"path": path, "from": base}

    monkeypatch.setattr(ManagementAPI, "_get", staticmethod(fake_get))
    api = ManagementAPI(URLS)
    assert api.get("overview")["from"] == "http://n2:15672"
    assert api.get("queues")["from"] == "http://n2:15672"  # remembered
    assert asked == ["http://n1:15672", "http://n2:15672", "http://n2:15672"]


def test_no_node_answering_is_one_clear_error(monkeypatch):
    def fake_get(base, auth, path):
        raise observe._Unreachable(f"cannot reach the RabbitMQ management API at {base}")

    monkeypatch.setattr(ManagementAPI, "_get", staticmethod(fake_get))
    with pytest.raises(BrokerConnectionError, match="n3:15672"):
        ManagementAPI(URLS).get("overview")


def test_an_explicit_management_url_is_the_only_target():
    api = ManagementAPI(URLS, management_url="https://mgmt.example:443/")
    assert api.base == "https://mgmt.example:443"
