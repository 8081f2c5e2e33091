"""A local HTTP server that receives webhooks: scripted answers, every request kept."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Answer:
    """What the server answers one request with (after ``wait`` seconds)."""

    status: int = 200
    wait: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    #: Close the connection after answering without saying so (as an idle timeout does).
    hang_up: bool = False
    #: Seconds between the body's bytes (sent one at a time): a slow server.
    drip: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers requests from ``script`` in turn (then ``then``); keeps every request."""

    def __init__(
        self, *script: Answer, then: Answer = Answer(), tls: tuple[Path, Path] | None = None
    ) -> None:
        self.script = list(script)
        self.then = then
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        scheme = "http"
        if tls is not None:  # (certificate, key): serve https
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/hook"

    def next_answer(self, received: Received) -> Answer:
        with self.lock:
            self.requests.append(received)
            return self.script.pop(0) if self.script else self.then

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.requests)} request(s) within {timeout}s, not {count}")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            answer = receiver.next_answer(Received(self.path, dict(self.headers.items()), body))
            if answer.wait:
                time.sleep(answer.wait)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if answer.drip:
                    for byte in answer.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(answer.drip)
                else:
                    self.wfile.write(answer.body)
                self.close_connection = answer.hang_up
            except OSError:
                pass  # the client gave up waiting

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def receiving(
    *script: Answer, then: Answer = Answer(), tls: tuple[Path, Path] | None = None
) -> Iterator[Receiver]:
    """A :class:`Receiver` serving on a thread while the block runs (https with ``tls``)."""
    receiver = Receiver(*script, then=then, tls=tls)
    thread = threading.Thread(target=receiver.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
