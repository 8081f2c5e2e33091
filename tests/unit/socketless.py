"""A pika connection with no socket: bytes go in by hand, frames out to a list.

For the tests of hubbub's own frame reading and writing (``hubbub.transport.pika._inbound``,
``hubbub.transport.pika._outbound``), which compare what they do with what pika does on the
same connection state.
"""

from __future__ import annotations

from typing import Any

import pika
from pika.channel import Channel
from pika.connection import Connection


class SocketlessConnection(Connection):
    """An open pika connection; ``written`` collects what it would send."""

    def __init__(self, frame_max: int = 131072) -> None:
        super().__init__(
            pika.ConnectionParameters(frame_max=frame_max), internal_connection_workflow=False
        )
        self.connection_state = self.CONNECTION_OPEN
        self._body_max_length = self._get_body_frame_max_length()
        self.written: list[bytes] = []

    def open_channel(self, number: int) -> Channel:
        channel = Channel(self, number, lambda *_: None)
        self._channels[number] = channel
        channel._set_state(channel.OPEN)
        return channel

    def _adapter_emit_data(self, data: bytes) -> None:
        self.written.append(data)

    def _adapter_connect_stream(self) -> None: ...
    def _adapter_disconnect_stream(self) -> None: ...
    def _adapter_call_later(self, *args: Any) -> None: ...
    def _adapter_remove_timeout(self, *args: Any) -> None: ...
    def _adapter_add_callback_threadsafe(self, *args: Any) -> None: ...
    def _adapter_get_write_buffer_size(self) -> int:
        return 0
