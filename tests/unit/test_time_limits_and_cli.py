"""Handler time limits (model, outcome, written-off threads) and consumer CLI details."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest
from click.testing import CliRunner

from hubbub import Hub, envelope, logs
from hubbub.cli import health as health_command
from hubbub.cli.main import cli
from hubbub.consumers import failure
from hubbub.consumers.dispatch import Dispatcher
from hubbub.consumers.handling import timed_out
from hubbub.consumers.retry import EXHAUSTED, NOT_RETRYABLE
from hubbub.consumers.watchdog import HandlerTimeoutError, period, stack_of
from hubbub.consumers.worker import Worker
from hubbub.errors import TopologyError
from hubbub.message import Delivery
from hubbub.topology import loader
from hubbub.topology.model import DEFAULT_TIMEOUT, RetryPolicy, Subscriber
from hubbub.transport.base import REQUEUE

FILE = """
hub: events
subscribers:
  mail: {handler: "m:f", topics: [a.b], timeout: 30s}
  sales: {handler: "m:f", topics: [a.c]}
"""


def test_the_time_limit_comes_from_the_file_or_the_decorator_with_a_default():
    topology = loader.loads(FILE)
    assert topology.subscriber("mail").timeout == 30
    assert topology.subscriber("sales").timeout == DEFAULT_TIMEOUT
    assert DEFAULT_TIMEOUT < 30 * 60  # below RabbitMQ's default consumer_timeout
    hub = Hub("events")
    hub.subscriber("mail", topics=["a.b"], timeout="2m")(lambda event: None)
    assert hub.topology.subscriber("mail").timeout == 120


def test_a_time_limit_must_be_a_positive_duration():
    with pytest.raises(TopologyError) as info:
        loader.loads(FILE.replace("timeout: 30s", "timeout: 0"))
    assert "subscribers.mail.timeout" in str(info.value)
    with pytest.raises(TopologyError, match=r"subscribers\.mail\.timeout"):
        loader.loads(FILE.replace("timeout: 30s", "timeout: soon"))


SUB = Subscriber(
    name="mail", handler="m:f", topics=("user.*",), retry=RetryPolicy(attempts=2, backoff=3)
)


def _delivery(attempt: int = 1) -> Delivery:
    headers = {"tenant": "acme", envelope.ATTEMPT: attempt}
    message = envelope.message(
        "user.signed_up", b'{"user_id": 1}', message_id="ev-1", headers=headers
    )
    return Delivery(7, "shop", "user.signed_up", False, message)


def test_a_timed_out_attempt_is_retried_with_a_record_saying_so_and_where_it_hung():
    outcome = timed_out(SUB, "shop.mail", _delivery(), HandlerTimeoutError(30), "  in hang()\n")
    assert (outcome.action, outcome.event_id, outcome.topic) == ("retry", "ev-1", "user.signed_up")
    assert 1.5 <= outcome.delay <= 3  # the policy's backoff, with jitter
    record = outcome.headers
    assert record[failure.MESSAGE] == "timed out after 30s"
    assert record[failure.EXCEPTION] == "hubbub.consumers.watchdog.HandlerTimeoutError"
    assert record[failure.TRACEBACK] == "  in hang()\n"
    assert record[envelope.ATTEMPT] == 2
    assert record["tenant"] == "acme"


def test_the_last_timed_out_attempt_is_dead_lettered_and_dont_retry_applies():
    last = timed_out(SUB, "shop.mail", _delivery(attempt=2), HandlerTimeoutError(90))
    assert (last.action, last.headers[failure.REASON]) == ("dead-letter", EXHAUSTED)
    assert last.headers[failure.MESSAGE] == "timed out after 90s"
    strict = Subscriber(
        name="mail",
        handler="m:f",
        topics=("user.*",),
        retry=RetryPolicy(dont_retry=("HandlerTimeoutError",)),
    )
    first = timed_out(strict, "shop.mail", _delivery(), HandlerTimeoutError(30))
    assert (first.action, first.headers[failure.REASON]) == ("dead-letter", NOT_RETRYABLE)


def test_a_written_off_thread_is_replaced_and_counted_stuck_until_it_returns():
    dispatcher = Dispatcher(1, name="t")
    gate, hung, ran = threading.Event(), threading.Event(), threading.Event()
    idents: list[int] = []

    def hang():
        idents.append(threading.get_ident())
        hung.set()
        gate.wait(10)

    dispatcher.submit(hang)
    assert hung.wait(5)
    dispatcher.write_off(idents[0])
    dispatcher.submit(ran.set)  # the replacement runs it while the first still hangs
    assert ran.wait(5)
    assert dispatcher.stuck() == 1
    assert "gate.wait(10)" in stack_of(idents[0])
    gate.set()  # it returns at last, and leaves instead of taking more work
    deadline = time.monotonic() + 5
    while dispatcher.stuck() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dispatcher.stuck() == 0
    assert dispatcher.shutdown(5) == 0


def test_shutdown_never_waits_past_its_timeout_for_a_stuck_handler():
    dispatcher = Dispatcher(1, name="t")
    gate, started = threading.Event(), threading.Event()
    dispatcher.submit(lambda: (started.set(), gate.wait(10)))
    assert started.wait(5)
    assert dispatcher.shutdown(0.1) == 1  # left behind, a daemon thread
    gate.set()


def test_the_watchdog_looks_a_few_times_per_shortest_limit():
    assert period([300.0]) == 1.0
    assert period([1.0, 300.0]) == 0.1
    assert period([0.1]) == 0.05


def test_connection_names_carry_the_host_and_pid(monkeypatch):
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")
    worker = Worker(loader.loads(FILE), {"mail": print, "sales": print}, name="hubbub consume x")
    where = f"{socket.gethostname()} pid {os.getpid()}"
    names = {
        p.client_properties["connection_name"]
        for p in (
            *worker.transport._supervisor._params,
            *worker._publisher.transport.supervisor._params,
        )  # type: ignore[attr-defined]
    }
    assert names == {f"hubbub consume x ({where})", f"hubbub consume x (copies, {where})"}


def test_health_without_a_port_is_unhealthy_with_status_1(monkeypatch):
    monkeypatch.delenv("HUBBUB_METRICS_PORT", raising=False)
    result = CliRunner().invoke(cli, ["health"])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        "unhealthy: no port to ask: give --port or HUBBUB_METRICS_PORT "
        "(the consumer's --metrics-port)"
    )


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("args", "level"),
    [
        (["consume", "--log-format", "json"], logging.INFO),
        (["--log-level", "DEBUG", "consume", "--log-format", "json"], logging.DEBUG),
        (["consume", "--log-level", "warning", "--log-format", "json"], logging.WARNING),
    ],
)
def test_consume_takes_the_log_options_after_the_subcommand_too(
    args, level, monkeypatch, restore_logging
):
    for name in ("HUBBUB_TOPOLOGY", "HUBBUB_LOG_FORMAT", "HUBBUB_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, args)
    assert "give a topology file" in result.output  # parsed; stops at the missing --file
    root = logging.getLogger()
    assert isinstance(root.handlers[-1].formatter, logs.JsonFormatter)
    assert root.level == level


def test_health_says_which_subscriber_has_stuck_handler_threads():
    details = {"consuming": True, "responsive": True, "stuck": {"mail": 2}}
    assert health_command._explain(details) == (
        "handler threads stuck past their time limit (2 in mail): restart the consumer"
    )


def test_a_written_off_delivery_of_a_lost_channel_is_not_copied_but_leaves_flight(monkeypatch):
    worker = Worker(loader.loads(FILE), {"mail": print, "sales": print})
    consumer = worker._flights[0]
    delivery = _delivery()
    entry = (delivery, 0, 0.0, threading.get_ident())
    consumer.running[id(delivery)] = entry
    consumer.epoch = 1  # the connection that delivered it was lost since
    handed, copied = [], []
    monkeypatch.setattr(worker._in_flight, "hand_over", lambda *args: handed.append(args))
    monkeypatch.setattr(worker._in_flight, "copy", lambda *args: copied.append(args))
    monkeypatch.setattr(consumer.pool, "write_off", lambda ident: None)
    worker._watch(now=consumer.spec.timeout + 1)
    assert handed == [(consumer, 0, delivery.tag, REQUEUE)]  # void: only out of flight
    assert copied == [] and consumer.running == {}
