"""Log formats, password masking in logs, URL settings and TLS options (no broker)."""

from __future__ import annotations

import io
import json
import logging
import ssl
import subprocess
from pathlib import Path

import pytest

from hubbub import logs
from hubbub.connection import DEFAULT_HEARTBEAT
from hubbub.errors import ConfigurationError
from hubbub.transport.pika import tls
from hubbub.transport.pika.params import parameters


@pytest.fixture(autouse=True)
def _restore_logging():
    """logs.setup replaces the root logger's handlers: put pytest's back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    pika_level = logging.getLogger("pika").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("pika").setLevel(pika_level)


@pytest.fixture
def captured():
    stream = io.StringIO()
    logs.setup("DEBUG", "json")
    logging.getLogger().handlers[0].setStream(stream)
    return stream


def test_json_lines_carry_the_event_fields_and_mask_passwords(captured):
    log = logging.getLogger("hubbub.consumers")
    log.warning(
        "event failed talking to amqp://app:hunter22@mq:5672/",
        extra=logs.event_fields("e1", "user.signed_up", "welcome", 3),
    )
    log.info("lifecycle line")
    first, second = (json.loads(x) for x in captured.getvalue().splitlines())
    assert first["message"] == "event failed talking to amqp://app:***@mq:5672/"
    assert (first["event_id"], first["topic"], first["subscriber"], first["attempt"]) == (
        "e1",
        "user.signed_up",
        "welcome",
        3,
    )
    assert first["level"] == "WARNING" and second["level"] == "INFO"
    assert "event_id" not in second


def test_the_text_format_masks_passwords_in_messages_and_tracebacks():
    stream = io.StringIO()
    logs.setup("INFO", "text")
    logging.getLogger().handlers[0].setStream(stream)
    try:
        raise RuntimeError("cannot reach amqps://u:pa55word@h/")
    except RuntimeError:
        logging.getLogger("x").exception("via amqp://u:pa55word@h/")
    assert "pa55word" not in stream.getvalue()
    assert stream.getvalue().count("u:***@h/") == 3  # message, source line, exception


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="json"):
        logs.setup("INFO", "xml")


def test_url_query_settings_win_over_defaults():
    plain, tuned = parameters(
        ["amqp://u:p@h/%2F", "amqp://u:p@h/%2F?heartbeat=2&socket_timeout=3"], name="t"
    )
    assert (plain.heartbeat, tuned.heartbeat, tuned.socket_timeout) == (DEFAULT_HEARTBEAT, 2, 3)
    assert plain.client_properties["connection_name"] == "t"


def test_a_bad_url_option_is_a_configuration_error_without_the_password():
    with pytest.raises(ConfigurationError) as raised:
        parameters(["amqp://u:secret99@h/%2F?heartbeat=often"], name="t")
    assert "secret99" not in str(raised.value) and "u:***@h" in str(raised.value)


def test_amqps_verifies_the_broker_by_its_host_with_the_system_cas(monkeypatch):
    for name in (tls.CA_ENV, tls.CERT_ENV, tls.KEY_ENV, tls.SERVER_NAME_ENV):
        monkeypatch.delenv(name, raising=False)
    (params,) = parameters(["amqps://u:p@broker.example:5671/%2F"], name="t")
    assert params.ssl_options.server_hostname == "broker.example"
    assert params.ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    assert params.ssl_options.context.check_hostname
    (plain,) = parameters(["amqp://u:p@h/%2F"], name="t")
    assert plain.ssl_options is None


def test_tls_files_come_from_the_environment(monkeypatch, tmp_path):
    ca, cert, key = _self_signed(tmp_path)
    monkeypatch.setenv(tls.CA_ENV, str(ca))
    monkeypatch.setenv(tls.CERT_ENV, str(cert))
    monkeypatch.setenv(tls.KEY_ENV, str(key))
    monkeypatch.setenv(tls.SERVER_NAME_ENV, "rabbit.internal")
    (params,) = parameters(["amqps://u:p@10.0.0.5/%2F"], name="t")
    assert params.ssl_options.server_hostname == "rabbit.internal"
    subjects = [c["subject"] for c in params.ssl_options.context.get_ca_certs()]
    assert subjects == [((("commonName", "hubbub-test-ca"),),)]


def test_unreadable_tls_files_are_reported_by_name(monkeypatch, tmp_path):
    monkeypatch.setenv(tls.CA_ENV, str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match=r"HUBBUB_TLS_CA=.*missing\.pem"):
        parameters(["amqps://u:p@h/%2F"], name="t")


def _self_signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hubbub-test-ca",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, cert, key
