"""docker-compose.yml for real: up, scale, kill, drain, broker outage, non-root.

One stack for the module (``up --build --wait --scale welcome-email=3``),
brought down with ``down -v`` after it. The tests run in file order: the
start-up order is checked before any container was restarted, the broker
outage last. Each test publishes its own events through the published AMQP
port and looks only at its own event ids in the outbox.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import pytest
from compose_support import (
    FIGURES,
    Stack,
    Stream,
    docker,
    events_handled,
    health,
    inspect,
    signups,
    wait_for,
)

from hubbub.producers import Publisher

pytestmark = pytest.mark.compose

CONSUMERS = [
    "welcome-email",
    "notify-sales",
    "notify-support",
    "audit-email",
    "track-activity",
    "inactivity-reminder",
]
QUEUE = "events.welcome-email"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    stack = Stack("docker-compose.yml", ["rabbitmq"])
    try:
        seconds = stack.up("--scale", "welcome-email=3")
        FIGURES["up --build --wait (single broker, 8 consumers)"] = f"{seconds:.0f} s"
        yield stack
    finally:
        stack.down()


def test_topology_exits_0_and_consumers_start_only_after_it(stack: Stack) -> None:
    (topology,) = stack.containers("topology", all_states=True)
    state = inspect(topology)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0, state
    applied = _time(state["FinishedAt"])
    for service in CONSUMERS:
        for container in stack.containers(service):
            info = inspect(container)
            assert info["RestartCount"] == 0, (service, info["State"])
            assert _time(info["State"]["StartedAt"]) >= applied, (service, info["State"])
            assert health(container) == "healthy"
    assert len(stack.containers("welcome-email")) == 3


def test_the_image_runs_as_non_root(stack: Stack) -> None:
    for service in ("topology", "welcome-email"):
        container = stack.containers(service, all_states=True)[0]
        assert inspect(container)["Config"]["User"] == "10001"
    running = stack.containers("welcome-email")[0]
    assert docker("exec", running, "id", "-u").strip() == "10001"
    status = docker("exec", running, "cat", "/proc/1/status")
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {"10001"}  # the consumer itself (pid 1), real and effective


def test_scaled_replicas_handle_each_event_exactly_once(stack: Stack) -> None:
    replicas = stack.containers("welcome-email")
    before = {c: events_handled(c) for c in replicas}
    start = time.monotonic()
    with Publisher("events", url=stack.url("rabbitmq")) as publisher:
        ids = publisher.publish_many(signups(300))
    wait_for("300 welcome emails", lambda: len(stack.handled("welcome-email", ids)) >= 300, 120)
    FIGURES["300 signups handled by 3 replicas"] = f"{time.monotonic() - start:.1f} s"
    _quiet_queue(stack)
    welcomed = Counter(stack.handled("welcome-email", ids))
    assert set(welcomed) == set(ids) and set(welcomed.values()) == {1}
    shares = {c: events_handled(c) - before[c] for c in replicas}
    assert sum(shares.values()) == 300 and all(shares.values()), shares
    FIGURES["replica shares of 300"] = ", ".join(str(n) for n in sorted(shares.values()))


def test_docker_kill_of_a_consumer_mid_stream_loses_nothing(stack: Stack) -> None:
    victim = stack.containers("welcome-email")[0]
    before = events_handled(victim)
    stream = Stream(stack.url("rabbitmq"), total=1000, pause=0.05)
    stream.start()
    wait_for("the victim handles the stream", lambda: events_handled(victim) > before, 60, 0.1)
    assert stream.is_alive()  # mid-stream
    docker("kill", victim)  # SIGKILL: no shutdown, its unacked deliveries go back
    killed = time.monotonic()
    stream.join(180)
    assert not stream.errors and len(stream.confirmed) == 1000, stream.errors
    ids = stream.confirmed
    wait_for(
        "every event after the kill",
        lambda: set(stack.handled("welcome-email", ids)) == set(ids),
        120,
    )
    FIGURES["docker kill of a replica mid-stream: all 1000 handled"] = (
        f"{time.monotonic() - killed:.1f} s after the kill"
    )
    dupes = sum(n - 1 for n in Counter(stack.handled("welcome-email", ids)).values())
    FIGURES["redelivered after the kill (handled twice)"] = str(dupes)
    FIGURES["restarts of the killed replica by its policy"] = str(inspect(victim)["RestartCount"])
    # Three running replicas again for the tests below (whether or not the restart
    # policy already restarted the killed one).
    stack.up("--scale", "welcome-email=3", "--no-recreate")
    assert len(stack.containers("welcome-email")) == 3


def test_compose_stop_drains_the_replicas(stack: Stack) -> None:
    with Publisher("events", url=stack.url("rabbitmq")) as publisher:
        ids = publisher.publish_many(signups(1500))
    replicas = stack.containers("welcome-email")
    wait_for("a backlog being worked", lambda: len(stack.handled("welcome-email", ids)) > 0, 60)
    start = time.monotonic()
    stack.compose("stop", "welcome-email", timeout=120)
    FIGURES["docker compose stop welcome-email (3 replicas)"] = f"{time.monotonic() - start:.1f} s"
    for container in replicas:
        state = inspect(container)["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 0, state
    at_stop = Counter(stack.handled("welcome-email", ids))
    assert set(at_stop.values()) == {1}
    assert len(at_stop) < len(ids)  # the stop came mid-stream (else this proved nothing)
    FIGURES["left unhandled at the stop, of 1500"] = str(len(ids) - len(at_stop))

    # What the replicas did not finish went back to the queue: after a restart
    # every event is handled, none lost.
    stack.compose("start", "welcome-email")
    wait_for(
        "the rest after start",
        lambda: set(stack.handled("welcome-email", ids)) == set(ids),
        120,
    )
    _quiet_queue(stack)
    twice = sum(n - 1 for n in Counter(stack.handled("welcome-email", ids)).values())
    # Not asserted zero: here (RabbitMQ 4.0.5) most stops had an
    # event whose ack went out just before the close handled again after the
    # start: quorum queues can drop such acks (rabbitmq-server#10327, open;
    # docs/operations.md). At least once holds.
    FIGURES["handled again after the stop/start, of 1500"] = str(twice)


def test_consumer_health_follows_the_broker(stack: Stack) -> None:
    (broker,) = stack.containers("rabbitmq")
    consumer = stack.containers("notify-sales")[0]
    assert health(consumer) == "healthy"
    docker("stop", broker, timeout=120)
    try:
        down = wait_for("unhealthy", lambda: health(consumer) == "unhealthy", 90)
    finally:
        docker("start", broker)
    up = wait_for("healthy again", lambda: health(consumer) == "healthy", 120)
    FIGURES["broker stopped -> consumer unhealthy"] = f"{down:.0f} s"
    FIGURES["broker started -> consumer healthy"] = f"{up:.0f} s"
    # The same container: it reconnected; nothing restarted it.
    assert inspect(consumer)["RestartCount"] == 0
    with Publisher("events", url=stack.url("rabbitmq")) as publisher:
        ids = publisher.publish_many(signups(5))
    wait_for("handled after the outage", lambda: len(stack.handled("welcome-email", ids)) == 5, 60)


def _quiet_queue(stack: Stack) -> None:
    """Nothing left to deliver, so a duplicate would already be in the outbox."""
    wait_for("welcome-email queue empty", lambda: stack.queue_depth("rabbitmq", QUEUE) == 0, 60)


def _time(text: str) -> datetime:
    # Docker's RFC 3339 with nanoseconds; microseconds are enough here.
    head, _, rest = text.partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6] or "0"
    return datetime.fromisoformat(f"{head}.{fraction}+00:00")
