"""Wire a worker's metrics, health endpoint and queue-depth poller together.

``hubbub consume --metrics-port N`` does this; an application running a
:class:`~hubbub.consumers.worker.Worker` itself can too::

    metrics = Metrics()
    worker = Worker(topology, handlers, observer=metrics)
    with monitored(worker, metrics, port=9100):
        worker.run()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hubbub.consumers.depth import DEFAULT_INTERVAL, DepthPoller
from hubbub.consumers.endpoint import Endpoint
from hubbub.consumers.metrics import Metrics
from hubbub.consumers.worker import Worker
from hubbub.errors import ConfigurationError


@contextmanager
def monitored(
    worker: Worker,
    metrics: Metrics,
    *,
    port: int,
    host: str = "",
    depth_interval: float = DEFAULT_INTERVAL,
) -> Iterator[Endpoint]:
    """Serve ``/metrics`` and ``/healthz`` on ``port`` and poll queue depths, while inside."""
    metrics.declare(worker.subscribers)
    try:
        endpoint = Endpoint(metrics.registry, worker.health, port=port, host=host)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host or '*'}:{port}: {exc.strerror or exc} "
            "(choose another --metrics-port / HUBBUB_METRICS_PORT)"
        ) from exc
    endpoint.start()
    poller = DepthPoller(
        worker.topology.names,
        worker.subscribers,
        worker.urls,
        metrics.depth,
        interval=depth_interval,
    ).start()
    try:
        yield endpoint
    finally:
        poller.stop()
        endpoint.close()
