"""Broker URLs: precedence, validation, masking, and connection errors in one sentence."""

from __future__ import annotations

import socket
import time

import pika.exceptions as pe
import pytest
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorSocketConnectError,
)

from hubbub.connection import (
    DEFAULT_URL,
    describe,
    mask,
    resolve_urls,
    user_of,
    vhost_of,
)
from hubbub.errors import ConfigurationError
from hubbub.transport.pika.params import connect_error, parameters, root_cause


def test_precedence_default_then_environment_then_argument(monkeypatch):
    monkeypatch.delenv("HUBBUB_URL", raising=False)
    assert resolve_urls() == [DEFAULT_URL]
    monkeypatch.setenv("HUBBUB_URL", "amqp://env:pw@env-host/%2F")
    assert resolve_urls() == ["amqp://env:pw@env-host/%2F"]
    assert resolve_urls("amqp://arg:pw@arg-host/%2F") == ["amqp://arg:pw@arg-host/%2F"]
    monkeypatch.setenv("HUBBUB_URL", "")
    assert resolve_urls() == [DEFAULT_URL]


def test_several_comma_separated_urls_name_cluster_nodes(monkeypatch):
    monkeypatch.setenv("HUBBUB_URL", " amqp://u:p@n1/%2F , amqp://u:p@n2/%2F,")
    assert resolve_urls() == ["amqp://u:p@n1/%2F", "amqp://u:p@n2/%2F"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://u:secret@host/", "the scheme must be amqp:// or amqps://"),
        ("redis://host", "the scheme must be amqp:// or amqps://"),
        ("localhost:5672", "the scheme must be amqp:// or amqps://"),
        ("amqp:///%2F", "no host"),
        ("amqp://u:secret@host:notaport/", "Port could not be cast"),
        (",", "no broker URL given"),
    ],
)
def test_invalid_urls_are_refused_with_the_password_masked(url, problem):
    with pytest.raises(ConfigurationError) as info:
        resolve_urls(url)
    assert problem in str(info.value)
    assert "secret" not in str(info.value)
    assert str(info.value).startswith("invalid broker URL")


def test_every_invalid_url_of_a_list_is_reported():
    with pytest.raises(ConfigurationError) as info:
        resolve_urls("http://a:x@h1/,amqp://ok@h2/,ftp://h3/")
    assert str(info.value) == (
        "invalid broker URL: http://a:***@h1/: the scheme must be amqp:// or amqps://; "
        "ftp://h3/: the scheme must be amqp:// or amqps://"
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("amqp://guest:guest@localhost:5672/%2F", "amqp://guest:***@localhost:5672/%2F"),
        ("amqps://u:s3cr%40t@host:5671/prod", "amqps://u:***@host:5671/prod"),
        ("AMQP://U:P@H/", "AMQP://U:***@H/"),
        ("amqp://u:a@n1/%2F,amqp://v:b@n2/%2F", "amqp://u:***@n1/%2F,amqp://v:***@n2/%2F"),
        ("amqp://u:a@n1, amqp://v:b@n2", "amqp://u:***@n1, amqp://v:***@n2"),
        (
            "cannot reach amqp://u:pw@h:1/%2F (refused)",
            "cannot reach amqp://u:***@h:1/%2F (refused)",
        ),
        ("amqp://u:pa/ss@h/", "amqp://u:***@h/"),  # unescaped '/' in the password
        ("amqp://u:p@ss@h/", "amqp://u:***@h/"),  # unescaped '@' in the password
        ("amqp://u:p#w?x@h/", "amqp://u:***@h/"),
        ("http://admin:pw@mgmt:15672/api", "http://admin:***@mgmt:15672/api"),
        ("amqp://:pw@h/", "amqp://:***@h/"),
        ("amqp://host:5672/%2F", "amqp://host:5672/%2F"),  # a port is not a password
        ("amqp://user@host/", "amqp://user@host/"),
        ("no url here", "no url here"),
    ],
)
def test_mask_hides_every_password(text, masked):
    assert mask(text) == masked


def test_describe_lists_urls_masked():
    assert describe(["amqp://u:a@n1/", "amqp://n2/"]) == "amqp://u:***@n1/, amqp://n2/"


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://h/%2F", "/"),
        ("amqp://h/", "/"),
        ("amqp://h", "/"),
        ("amqp://h/prod", "prod"),
        ("amqp://h/a%2Fb", "a/b"),
    ],
)
def test_vhost_of(url, vhost):
    assert vhost_of(url) == vhost


def test_parameters_name_the_connection_and_keep_url_settings():
    (params,) = parameters(["amqp://u:p@h:5673/prod?heartbeat=7"], name="hubbub test")
    assert (params.host, params.port, params.virtual_host) == ("h", 5673, "prod")
    assert params.heartbeat == 7
    assert params.client_properties["connection_name"] == "hubbub test"
    assert params.connection_attempts == 1


URLS = ["amqp://guest:secret@127.0.0.1:1/%2F"]


def refused() -> BaseException:
    inner = AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))
    return pe.AMQPConnectionError(AMQPConnectionWorkflowFailed([inner]))


def test_root_cause_digs_through_pikas_wrappers():
    assert isinstance(root_cause(refused()), ConnectionRefusedError)
    plain = ValueError("x")
    assert root_cause(plain) is plain


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (
            refused(),
            "cannot connect to the broker at amqp://guest:***@127.0.0.1:1/%2F (connection "
            "refused): is RabbitMQ running and reachable?",
        ),
        (
            AMQPConnectionWorkflowFailed([socket.gaierror(-2, "Name or service not known")]),
            "cannot resolve the broker host in amqp://guest:***@127.0.0.1:1/%2F: check the URL",
        ),
        (
            pe.ProbableAuthenticationError("ConnectionClosedByBroker: (403) 'ACCESS_REFUSED'"),
            "broker at amqp://guest:***@127.0.0.1:1/%2F refused the credentials: check the user "
            "and password in the URL",
        ),
        (
            pe.ProbableAccessDeniedError("(530) 'NOT_ALLOWED - vhost nope not found'"),
            "broker at amqp://guest:***@127.0.0.1:1/%2F refused the virtual host: it does not "
            "exist or the user has no access to it (rabbitmqctl add_vhost / set_permissions)",
        ),
        (
            pe.AMQPConnectionError(AMQPConnectorSocketConnectError(TimeoutError("timed out"))),
            "cannot connect to the broker at amqp://guest:***@127.0.0.1:1/%2F (timed out): "
            "is RabbitMQ running and reachable?",
        ),
    ],
)
def test_connect_errors_are_one_actionable_masked_sentence(error, sentence):
    message = str(connect_error(error, URLS))
    assert message == sentence
    assert "secret" not in message


def test_masking_a_long_run_of_letters_takes_linear_time() -> None:
    # Every log line goes through mask(): a scheme tried from every position of a
    # long word took quadratic time (about 0.5 s for 8 KB, 30 s for 64 KB).
    started = time.perf_counter()
    assert mask("a" * 64_000) == "a" * 64_000
    assert time.perf_counter() - started < 0.5
    assert mask("xhttps://u:p@h and amqp://g:s@t@h") == "xhttps://u:***@h and amqp://g:***@h"


@pytest.mark.parametrize(
    ("url", "user"),
    [
        ("amqp://h/%2F", "guest"),  # pika's default, as the broker sees it
        ("amqp://app:pw@h/", "app"),
        ("amqp://a%40b:pw@h/", "a@b"),
    ],
)
def test_user_of(url, user):
    assert user_of(url) == user
