"""A TCP proxy in front of a broker that can freeze: a link that goes silent without closing.

What a dead NAT entry, a paused VM or a pulled cable looks like to a
client: no FIN, no RST, no data in either direction. Only heartbeats can
notice it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class FreezingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; :meth:`freeze` stops all traffic, both ways."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        """Stop forwarding in both directions; every connection stays open."""
        self._flowing.clear()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> FreezingProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            self._flowing.wait()  # frozen: hold the bytes, forward nothing, close nothing
            if not data or self._closed.is_set():
                return
            try:
                target.sendall(data)
            except OSError:
                return
