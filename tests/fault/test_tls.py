"""``amqps://`` end to end against a TLS listener of the private node."""

from __future__ import annotations

import threading

import pytest
from fault_support import declare_on, recording_spec, wait_for

from hubbub.consumers.worker import Worker
from hubbub.errors import BrokerConnectionError
from hubbub.producers import Publisher
from hubbub.testing.broker import unique_name
from hubbub.transport.pika import tls

pytestmark = pytest.mark.fault


def test_events_flow_over_tls_verified_with_the_ca_from_the_environment(node, cleanup, monkeypatch):
    hub = unique_name("tls")
    topology = declare_on(node.url, recording_spec(hub))
    cleanup(node.url, topology)
    url = f"amqps://guest:guest@localhost:{node.tls_port}/%2F"
    monkeypatch.setenv(tls.CA_ENV, str(node.certs.ca))
    got: list[str] = []
    worker = Worker(topology, {"work": lambda e: got.append(e.id)}, url=url)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.consuming.wait(15)
        with Publisher(hub, url=url) as publisher:
            event_id = publisher.publish("job.secure", {})
        wait_for(lambda: got == [event_id], 10, "the event over TLS")
    finally:
        worker.stop()
        thread.join(30)


def test_a_broker_certificate_the_client_cannot_verify_is_refused(node, monkeypatch):
    monkeypatch.delenv(tls.CA_ENV, raising=False)  # the system CAs do not know the test CA
    url = f"amqps://guest:s3cret-pw@localhost:{node.tls_port}/%2F"
    with pytest.raises(BrokerConnectionError) as raised:
        Publisher("any", url=url).publish("job.x", {})
    message = str(raised.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message or "certificate verify failed" in message
    assert "s3cret-pw" not in message
