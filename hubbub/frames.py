"""One socket write for many AMQP frames (pika's per-frame overhead, removed).

pika hands every frame to its transport as a separate buffer and sends each
with its own ``send()`` system call: three per published message (method,
header, body), one per ack. Under load that is most of a publisher's cost.
:func:`one_write` collects the frames a batch of calls produces on the I/O
thread and hands them to the transport as one buffer: the same bytes in the
same order, one system call. Measured in ``bench/README.md``.

It relies on ``Connection._adapter_emit_data``, the one hook every pika 1.x
adapter implements to send bytes. Should a pika version lack it, frames are
written as pika does by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pika.connection import Connection

_EMIT = "_adapter_emit_data"


@contextmanager
def one_write(connection: Connection | None) -> Iterator[None]:
    """Frames emitted on ``connection`` inside the block go out in one write.

    Call only on the connection's I/O thread, around calls that only emit
    frames (publish, ack, nack): the collected bytes are written when the
    block ends, also when it raises (pika marshals a whole message before
    emitting it, so a failed call leaves nothing half written).
    """
    emit = getattr(connection, _EMIT, None)
    if connection is None or emit is None or _EMIT in vars(connection):
        yield  # no hook, or already inside a one_write block
        return
    chunks: list[bytes] = []
    setattr(connection, _EMIT, chunks.append)
    try:
        yield
    finally:
        delattr(connection, _EMIT)
        if chunks:
            emit(b"".join(chunks))
