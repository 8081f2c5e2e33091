"""The install-time check of the pika internals a fast frame path touches."""

from __future__ import annotations

import logging

import pytest
from pika.connection import Connection

from hubbub.transport.pika import _internals
from hubbub.transport.pika._internals import missing, usable


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_internals, "_told", set())
    monkeypatch.delenv(_internals.FAST_FRAMES_ENV, raising=False)


def test_a_path_whose_internals_all_exist_is_usable_quietly(caplog):
    with caplog.at_level(logging.INFO, logger="hubbub.transport"):
        assert usable("fast path", "pika's own", [(Connection, "_adapter_emit_data")])
    assert caplog.records == []


def test_a_missing_internal_falls_back_and_says_which_once(caplog):
    class Renamed:
        bytes_sent = 0

    owner = Renamed()
    needed = [(owner, "bytes_sent"), (owner, "_adapter_emit_data"), (Connection, "_gone")]
    assert missing(needed) == ["Renamed._adapter_emit_data", "Connection._gone"]
    with caplog.at_level(logging.INFO, logger="hubbub.transport"):
        assert not usable("publish frames", "pika's basic_publish", needed)
        assert not usable("publish frames", "pika's basic_publish", needed)
    (record,) = caplog.records  # once per path, not once per connection
    assert record.getMessage() == (
        "publish frames: this pika lacks Renamed._adapter_emit_data, Connection._gone; "
        "using pika's basic_publish (correct, only slower)"
    )


def test_the_switch_forces_pika_own_paths(monkeypatch, caplog):
    monkeypatch.setenv("HUBBUB_FAST_FRAMES", "0")
    with caplog.at_level(logging.INFO, logger="hubbub.transport"):
        assert not usable("read deliveries", "pika's frame reader", [(Connection, "_channels")])
    assert "HUBBUB_FAST_FRAMES=0, using pika's frame reader" in caplog.text
