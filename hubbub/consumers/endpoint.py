"""The HTTP endpoint of a consumer process: ``/metrics`` and ``/healthz``.

One small threaded HTTP server per process, on ``--metrics-port``:

``GET /metrics``
    Prometheus text format from the process's :class:`~hubbub.consumers.metrics.Metrics`.
``GET /healthz``
    200 when the consumer is connected, every subscriber has a consumer on
    its queue, and the I/O thread answers within 3 s; 503 otherwise.
    The JSON body says which (``hubbub health`` prints it).

Health is judged inside the process, from its own state, because "the broker
answers" says nothing about whether this consumer is consuming: a process
that lost its connection, is reconnecting, is stopping, or whose I/O thread is
stuck is unhealthy even while the broker is fine.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("hubbub.consumers")

#: ``check() -> (healthy, details)``.
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class Endpoint:
    """Serve ``/metrics`` and ``/healthz`` on a daemon thread until :meth:`close`."""

    def __init__(
        self, registry: CollectorRegistry, health: HealthCheck, *, port: int, host: str = ""
    ) -> None:
        handler = _handler_class(registry, health)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="hubbub-metrics", daemon=True
        )

    def start(self) -> Endpoint:
        self._thread.start()
        log.info("metrics on :%d/metrics, health on :%d/healthz", self.port, self.port)
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_class(
    registry: CollectorRegistry, health: HealthCheck
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                healthy, details = health()
                body = json.dumps({"healthy": healthy, **details}).encode()
                self._reply(200 if healthy else 503, "application/json", body)
            else:
                self._reply(404, "text/plain", b"try /metrics or /healthz\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("http: " + format, *args)

    return Handler
