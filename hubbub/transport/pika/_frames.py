"""One socket write for many AMQP frames (pika's per-frame overhead, removed).

pika hands every frame to its transport as a separate buffer and sends each
with its own ``send()`` system call: three per published message (method,
header, body), one per ack. Under load that is most of a publisher's cost.
:func:`one_write` collects the frames a batch of calls produces on the I/O
thread and hands them to the transport as one buffer: the same bytes in the
same order, one system call. Measured in ``bench/README.md``.

It relies on ``Connection._adapter_emit_data``, the one hook every pika 1.x
adapter implements to send bytes. Should a pika version lack it (or
``HUBBUB_FAST_FRAMES=0`` ask for pika's own path), frames are written as
pika does by itself, and a log line says so once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pika.connection import Connection

from hubbub.transport.pika._internals import usable

_EMIT = "_adapter_emit_data"


@contextmanager
def one_write(connection: Connection | None) -> Iterator[None]:
    """Frames emitted on ``connection`` inside the block go out in one write.

    Call only on the connection's I/O thread, around calls that only emit
    frames (publish, ack, nack): the collected bytes are written when the
    block ends, also when it raises (pika marshals a whole message before
    emitting it, so a failed call leaves nothing half written).
    """
    if connection is None or _EMIT in getattr(connection, "__dict__", ()):
        yield  # no connection, or already inside a one_write block
        return
    if not usable("one write per batch", "a write per frame", [(connection, _EMIT)]):
        yield
        return
    emit = getattr(connection, _EMIT)
    chunks: list[bytes] = []
    setattr(connection, _EMIT, chunks.append)
    try:
        yield
    finally:
        delattr(connection, _EMIT)
        if chunks:
            emit(b"".join(chunks))
