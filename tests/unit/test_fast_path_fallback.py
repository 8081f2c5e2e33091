"""The fast frame paths check every pika internal they touch, and fall back cleanly.

A pika release that renames one of them must leave hubbub on pika's own
paths (correct, only slower), saying so once in the log, never failing
inside the I/O loop; ``HUBBUB_FAST_FRAMES=0`` asks for the fallback.
"""

from __future__ import annotations

import logging

import pytest
from pika import spec
from socketless import SocketlessConnection
from test_inbound import Connected, delivery

from hubbub.transport.pika import _inbound, _internals
from hubbub.transport.pika._frames import one_write


@pytest.fixture(autouse=True)
def tell_again(monkeypatch):
    """Each test sees the once-per-process log line afresh."""
    monkeypatch.setattr(_internals, "_told", set())
    monkeypatch.delenv(_internals.FAST_FRAMES_ENV, raising=False)


def test_a_connection_without_an_internal_reads_the_pika_way_and_says_so(caplog):
    connection = Connected()
    connection.open_channel(1)
    del connection._frame_buffer  # as if a pika release had renamed it
    own = connection._on_data_available
    with caplog.at_level(logging.INFO, logger="hubbub.transport"):
        assert _inbound.install(connection) is False
    assert connection._on_data_available == own  # pika's reader stays
    [line] = [r.getMessage() for r in caplog.records]
    assert "Connected._frame_buffer" in line and "pika's own frame reading" in line


def test_a_channel_without_an_internal_leaves_the_connection_to_pika(monkeypatch, caplog):
    sample = _inbound._sample_channel()
    monkeypatch.delattr(sample, "_cancelled")
    connection = SocketlessConnection()
    with caplog.at_level(logging.INFO, logger="hubbub.transport"):
        assert _inbound.install(connection) is False
    assert "Channel._cancelled" in caplog.text


def test_fast_frames_0_keeps_pikas_paths_and_deliveries_still_arrive(monkeypatch, caplog):
    monkeypatch.setenv(_internals.FAST_FRAMES_ENV, "0")
    connection = Connected()
    connection.open_channel(1)
    with caplog.at_level(logging.INFO, logger="hubbub.transport"):
        assert _inbound.install(connection) is False
        with one_write(connection):
            connection._adapter_emit_data(b"a")
            connection._adapter_emit_data(b"b")
    assert connection.written == [b"a", b"b"]  # a write per frame, pika's way
    connection._on_data_available(delivery(1, spec.BasicProperties(), b"{}"))
    assert [r[3] for r in connection.received] == [b"{}"]
    assert caplog.text.count("HUBBUB_FAST_FRAMES=0") == 2  # once per path


def test_a_connection_without_the_write_hook_writes_the_pika_way(caplog):
    class NoHook:
        pass

    with caplog.at_level(logging.INFO, logger="hubbub.transport"), one_write(NoHook()):  # type: ignore[arg-type]
        pass
    assert "NoHook._adapter_emit_data" in caplog.text and "a write per frame" in caplog.text
