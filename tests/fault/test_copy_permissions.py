"""A consumer whose user may not write its retry copies (private node).

At start it must refuse to run, naming the exchange and the grant that fixes
it; if the permission goes away while it runs, the first refused copy must
stop it, instead of redelivering the failing event until the delivery limit
dead-letters it behind its retry policy's back.
"""

from __future__ import annotations

import re
import threading

import pytest
from click.testing import CliRunner
from fault_support import declare_on, queue_depth, recording_spec, wait_for, write_topology

from hubbub.cli.main import cli
from hubbub.consumers.worker import Worker
from hubbub.errors import HubbubError
from hubbub.producers import Publisher
from hubbub.testing.broker import unique_name
from hubbub.topology import permissions

pytestmark = pytest.mark.fault


def user(node, name: str, grant: permissions.Permissions) -> str:
    node.ctl("add_user", name, "pw-" + name)
    grant_to(node, name, grant)
    return f"amqp://{name}:pw-{name}@127.0.0.1:{node.port}/%2F"


def grant_to(node, name: str, grant: permissions.Permissions) -> None:
    node.ctl("set_permissions", "-p", "/", name, grant.configure, grant.write, grant.read)


def without_ladder(grant: permissions.Permissions, names) -> permissions.Permissions:
    """The consumer's grant, minus the delay ladder and the delivery exchange."""
    write = f"^({re.escape(names.exchange)}|{re.escape(names.dead_letter_exchange)})$"
    return permissions.Permissions(grant.configure, write, grant.read)


def test_a_consumer_that_may_not_write_to_the_ladder_refuses_to_start(node, tmp_path, cleanup):
    spec = recording_spec(unique_name("noladder"))
    topology = declare_on(node.url, spec)
    cleanup(node.url, topology)
    names = topology.names
    name = unique_name("con")
    url = user(node, name, without_ladder(permissions.consumer(names, ["work"]), names))

    result = CliRunner().invoke(
        cli, ["consume", "--url", url, "--file", str(write_topology(tmp_path / "t.yaml", spec))]
    )

    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: user '{name}' may not write to exchange '{names.delivery}'")
    assert f"'{names.level(27)}'" in line and "ACCESS_REFUSED" in line
    assert permissions.consumer(names, ["work"]).command(name) in line  # the fix
    assert queue_depth(node.url, names.unrouted)[0] == 0  # the probes were never routed


def test_a_copy_refused_while_running_stops_the_consumer_instead_of_a_redelivery_loop(
    node, cleanup
):
    spec = recording_spec(unique_name("revoked"), retry={"attempts": 3, "backoff": "1s"})
    topology = declare_on(node.url, spec)
    cleanup(node.url, topology)
    names = topology.names
    name = unique_name("con")
    grant = permissions.consumer(names, ["work"])
    url = user(node, name, grant)
    calls: list[str] = []

    def fails(event):
        calls.append(event.id)
        raise RuntimeError("fails until retried")

    worker = Worker(topology, {"work": fails}, url=url)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run(worker, errors), daemon=True)
    thread.start()
    try:
        assert worker.consuming.wait(15), errors
        grant_to(node, name, without_ladder(grant, names))  # revoked while it runs
        with Publisher(topology.hub, url=node.url) as publisher:
            event_id = publisher.publish("job.x", {})
        thread.join(15)
        assert not thread.is_alive(), "the consumer kept running after a refused copy"
    finally:
        worker.stop()
        thread.join(10)
    [error] = errors
    assert isinstance(error, HubbubError)
    assert str(error).startswith(f"cannot retry or dead-letter: user '{name}' may not write")
    assert f"'{names.level(0)}'" in str(error)
    assert calls == [event_id]  # once, not until the delivery limit
    wait_for(lambda: queue_depth(node.url, names.queue("work"))[0] == 1, 10, "the event to be back")
    assert queue_depth(node.url, names.dead_letter_queue("work"))[0] == 0


def _run(worker: Worker, errors: list[BaseException]) -> None:
    try:
        worker.run()
    except BaseException as exc:
        errors.append(exc)
