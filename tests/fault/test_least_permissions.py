"""The documented least permissions are enough, and deny the rest (private node).

Users are created on the fault suite's own node, never on the shared broker.
A publisher-only user publishes plain, unrouted and delayed events; a
consumer user consumes, retries, dead-letters and publishes a follow-up
event; each is refused what its role does not need.
"""

from __future__ import annotations

import threading

import pika
import pika.exceptions as pe
import pytest
from fault_support import declare_on, queue_depth, wait_for

from hubbub.admin.archive import Archive, Window
from hubbub.consumers.worker import Worker
from hubbub.producers import Publisher
from hubbub.testing.broker import unique_name
from hubbub.topology import permissions

pytestmark = pytest.mark.fault


def user(node, name: str, grant: permissions.Permissions) -> str:
    node.ctl("add_user", name, "pw-" + name)
    node.ctl("set_permissions", "-p", "/", name, grant.configure, grant.write, grant.read)
    return f"amqp://{name}:pw-{name}@127.0.0.1:{node.port}/%2F"


def refused(url: str, action) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # so a refused publish raises here, not later
        action(channel)
    except pe.ChannelClosedByBroker as exc:
        return exc.reply_code == 403
    finally:
        if connection.is_open:
            connection.close()
    return False


def test_least_permissions_of_a_publisher_and_a_consumer(node, cleanup):
    hub = unique_name("perm")
    spec = {
        "hub": hub,
        "subscribers": {
            "work": {
                "handler": "x:y",
                "topics": ["job.#"],
                "retry": {"attempts": 2, "backoff": "1s"},
            },
            "audit": {"handler": "x:y", "topics": ["audit.#"]},
        },
    }
    topology = declare_on(node.url, spec)
    cleanup(node.url, topology)
    names = topology.names
    publisher_url = user(node, unique_name("pub"), permissions.publisher(names))
    consumer_url = user(node, unique_name("con"), permissions.consumer(names, ["work"]))

    with Publisher(hub, url=publisher_url) as publisher:
        publisher.publish("job.ok", {})
        publisher.publish("job.fail", {})
        publisher.publish("nobody.listens", {})  # parked by the alternate exchange
        publisher.publish("job.later", {}, delay=1)
    assert queue_depth(node.url, names.unrouted)[0] == 1
    assert refused(publisher_url, lambda ch: ch.basic_get(names.queue("work")))
    assert refused(publisher_url, lambda ch: ch.exchange_declare("rogue", "topic"))
    assert refused(publisher_url, lambda ch: ch.basic_publish(names.dead_letter_exchange, "x", b""))

    handled: list[str] = []
    follow_up = Publisher(hub, url=consumer_url)

    def handler(event):
        handled.append(event.topic)
        if event.topic == "job.fail":
            raise RuntimeError("always fails")
        follow_up.publish("audit.done", {"of": event.id})

    worker = Worker(topology, {"work": handler}, url=consumer_url, subscribers=["work"])
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.consuming.wait(15)
        wait_for(
            lambda: queue_depth(node.url, names.dead_letter_queue("work"))[0] == 1,
            20,
            "the failing event to be retried once, then dead-lettered",
        )
        wait_for(
            lambda: sorted(handled) == ["job.fail", "job.fail", "job.later", "job.ok"],
            10,
            "the delayed event",
        )
        wait_for(
            lambda: queue_depth(node.url, names.queue("audit"))[0] == 2, 10, "the follow-up events"
        )
    finally:
        worker.stop()
        thread.join(30)
        follow_up.close()
    assert refused(consumer_url, lambda ch: ch.basic_get(names.queue("audit")))
    assert refused(consumer_url, lambda ch: ch.queue_declare(names.queue("work") + ".x"))
    assert refused(consumer_url, lambda ch: ch.queue_purge(names.dead_letter_queue("work")))


def test_the_archive_grant_reads_and_replays_the_archive_and_nothing_else(node, cleanup):
    hub = unique_name("perm-archive")
    spec = {
        "hub": hub,
        "archive": {"retention": "1d"},
        "subscribers": {"work": {"handler": "x:y", "topics": ["job.#"]}},
    }
    topology = declare_on(node.url, spec)
    cleanup(node.url, topology)
    names = topology.names
    with Publisher(hub, url=node.url) as publisher:
        ids = [publisher.publish("job.done", {"n": n}) for n in range(3)]
    archivist = user(node, unique_name("arc"), permissions.archive(names))
    archive = Archive(topology, url=archivist)
    assert [e.id for e in archive.events()] == ids
    drained = queue_depth(node.url, names.queue("work"))[0]
    report = archive.replay("work", Window(ids=frozenset(ids[1:])))
    assert report.copied == 2
    assert queue_depth(node.url, names.queue("work"))[0] == drained + 2
    assert refused(archivist, lambda ch: ch.basic_get(names.queue("work")))
    assert refused(archivist, lambda ch: ch.basic_publish(names.exchange, "job.x", b"{}"))
    assert refused(archivist, lambda ch: ch.queue_declare(names.queue("work") + ".x"))
    assert refused(archivist, lambda ch: ch.queue_delete(names.archive))
