"""The example app's Celery side: a task that announces ``user.signed_up`` to the hub.

A Celery app already holds a kombu connection pool to the broker
(``app.pool``); :class:`~hubbub.producers.kombu.KombuPublisher` publishes
the hub's events through it, with confirms, so the task needs no second
connection stack. Any hubbub subscriber (``hubbub consume``) receives them.

Run a worker and send it a task::

    celery -A example_app.celery_app worker --pool=solo
    python -c "from example_app.celery_app import sign_up; sign_up.delay(7, 'Ann', 'a@b.c')"

``HUBBUB_URL`` names the broker, ``HUBBUB_HUB`` the hub (default
``events``), ``EXAMPLE_CELERY_QUEUE`` Celery's task queue.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery

from hubbub.connection import resolve_urls
from hubbub.errors import BrokerConnectionError, PublishError
from hubbub.producers.kombu import KombuPublisher

app = Celery("example_app", broker=";".join(resolve_urls()))  # kombu's failover separator
app.conf.update(
    # Publisher confirms on every connection of the pool: hubbub refuses to
    # publish without them (and Celery's own task messages gain them too).
    broker_transport_options={"confirm_publish": True},
    task_default_queue=os.environ.get("EXAMPLE_CELERY_QUEUE", "example-app.tasks"),
    worker_enable_remote_control=False,  # no pidbox queue per worker
    worker_hijack_root_logger=False,
)

_publisher: KombuPublisher | None = None
_lock = threading.Lock()


def publisher() -> KombuPublisher:
    """The hub publisher on the app's pool (created on first use, after a worker forks)."""
    global _publisher
    with _lock:
        if _publisher is None:
            _publisher = KombuPublisher(os.environ.get("HUBBUB_HUB", "events"), app.pool)
        return _publisher


@app.task(
    bind=True,
    name="example_app.sign_up",
    autoretry_for=(PublishError, BrokerConnectionError),
    retry_backoff=True,
    max_retries=5,
)
def sign_up(task: Any, user_id: int, name: str, email: str) -> str:
    """Sign a user up (the app's own work would go here), then tell the hub; returns the event id.

    The event is confirmed by the broker before the task returns, so a task
    that succeeded has announced its signup. The event id is the task id: a
    retried task publishes the same event again, which subscribers can
    recognise as a duplicate.
    """
    data = {"user_id": user_id, "name": name, "email": email}
    return publisher().publish("user.signed_up", data, message_id=task.request.id)
