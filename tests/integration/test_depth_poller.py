"""The depth poller reads counts over AMQP; a missing dead-letter queue does not stop it."""

from __future__ import annotations

import pytest
from core_support import channel

from hubbub.consumers.depth import DepthPoller, QueueMissingError
from hubbub.testing.broker import unique_name
from hubbub.topology.names import HubNames

pytestmark = pytest.mark.integration


def test_a_poll_reports_each_subscriber_and_none_for_a_missing_dead_letter_queue(broker_url):
    names = HubNames(unique_name("t-depth"))
    with_dlq, without = "a", "b"
    made = [names.queue(with_dlq), names.dead_letter_queue(with_dlq), names.queue(without)]
    reports: list[tuple[str, int, int, int | None]] = []
    poller = DepthPoller(names, [with_dlq, without], [broker_url], lambda *r: reports.append(r))
    try:
        with channel(broker_url) as ch:
            for queue in made:
                ch.queue_declare(queue, durable=True)
            ch.confirm_delivery()
            ch.basic_publish("", names.queue(with_dlq), b"1")
            ch.basic_publish("", names.dead_letter_queue(with_dlq), b"2")
        poller.poll_once()
        assert reports == [(with_dlq, 1, 0, 1), (without, 0, 0, None)]
        poller.subscribers.append("gone")
        with pytest.raises(QueueMissingError, match="does not exist"):
            poller.poll_once()
    finally:
        poller._drop_connection()
        with channel(broker_url) as ch:
            for queue in made:
                ch.queue_delete(queue)
