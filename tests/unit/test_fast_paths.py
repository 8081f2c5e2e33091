"""The pieces that make publishing and consuming cheap keep their contracts.

ConfirmGroup (one waiter for a batch of confirms), Pending.settle (one
outcome per message), one_write (frames coalesced into one write, in order),
Dispatcher (handler threads fed from one queue, nothing dropped on shutdown)
and new_id (a real UUID4). No broker; about 0.3 s.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future

import pytest

from hubbub import envelope
from hubbub.consumers.dispatch import Dispatcher
from hubbub.errors import PublishError
from hubbub.message import Message, Outbound
from hubbub.transport.base import Pending
from hubbub.transport.confirms import ConfirmGroup
from hubbub.transport.pika._frames import one_write


def outgoing(**kwargs: object) -> Pending:
    return Pending(Outbound("hub", "key", Message(b"{}"), False), **kwargs)  # type: ignore[arg-type]


def test_a_group_is_done_when_every_message_is_settled_and_names_the_failed():
    group = ConfirmGroup(3)
    messages = [outgoing(group=group, index=i) for i in range(3)]
    messages[0].settle(None)
    messages[2].settle(PublishError("nacked"))
    assert not group.wait(0.05)
    messages[1].settle(None)
    assert group.wait(0.05)
    assert group.failed == [2]
    assert str(group.errors[2]) == "nacked"  # the reason, for publish() to raise


def test_a_group_of_one_wakes_its_waiter_and_stays_done():
    group = ConfirmGroup(1)
    message = outgoing(group=group)
    timer = threading.Timer(0.05, message.settle, args=(None,))
    timer.start()
    started = time.monotonic()
    assert group.wait(5)
    assert time.monotonic() - started < 2
    assert group.wait(0) and group.wait(0)  # done for good
    assert group.errors == {}


def test_a_message_is_settled_once_whatever_comes_after():
    group = ConfirmGroup(2)
    future: Future[None] = Future()
    first = outgoing(group=group, index=0, future=future)
    first.settle(PublishError("returned"))
    first.settle(None)  # the ack that follows a return
    assert group.left == 1
    assert group.failed == [0]
    with pytest.raises(PublishError):
        future.result(0)


def test_the_group_timeout_counts_from_the_last_confirm_not_from_the_start():
    group = ConfirmGroup(4)
    messages = [outgoing(group=group, index=i) for i in range(4)]

    def confirm_slowly() -> None:
        for message in messages:
            time.sleep(0.1)
            message.settle(None)

    threading.Thread(target=confirm_slowly).start()
    assert group.wait(idle_timeout=0.3)  # 0.4 s in all, never 0.3 s without progress


def test_a_group_without_progress_times_out():
    group = ConfirmGroup(2)
    outgoing(group=group, index=0).settle(None)
    started = time.monotonic()
    assert not group.wait(idle_timeout=0.1)
    assert time.monotonic() - started < 1.0


def test_a_withdrawn_message_is_not_claimed():
    future: Future[None] = Future()
    future.cancel()
    assert not outgoing(future=future).claim()
    assert outgoing().claim()


class FakeConnection:
    """Records the writes a pika connection would make."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def _adapter_emit_data(self, data: bytes) -> None:
        self.writes.append(data)

    def publish(self, *frames: bytes) -> None:  # what pika does per message: a write per frame
        for frame in frames:
            self._adapter_emit_data(frame)


def test_frames_emitted_in_a_block_go_out_in_one_write_in_order():
    connection = FakeConnection()
    with one_write(connection):  # type: ignore[arg-type]
        connection.publish(b"m1", b"h1", b"b1")
        connection.publish(b"m2", b"h2", b"b2")
    connection.publish(b"after")
    assert connection.writes == [b"m1h1b1m2h2b2", b"after"]


def test_frames_are_written_even_when_the_block_raises_and_nested_blocks_write_once():
    connection = FakeConnection()
    with pytest.raises(ValueError), one_write(connection):  # type: ignore[arg-type]
        connection.publish(b"a")
        with one_write(connection):  # type: ignore[arg-type]
            connection.publish(b"b")
        raise ValueError("unencodable header")
    assert connection.writes == [b"ab"]
    with one_write(None), one_write(object()):  # type: ignore[arg-type]
        pass  # no connection, or no hook: nothing to do


def test_the_dispatcher_runs_everything_queued_before_shutdown_returns():
    done: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        time.sleep(0.001)
        with lock:
            done.append(i)

    dispatcher = Dispatcher(4, name="t")
    for i in range(200):
        dispatcher.submit(work, i)
    dispatcher.shutdown()
    assert sorted(done) == list(range(200))
    with pytest.raises(RuntimeError):
        dispatcher.submit(work, 0)


def test_the_dispatcher_runs_items_on_that_many_threads_at_once():
    running, peak = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(2)
        with lock:
            running -= 1

    dispatcher = Dispatcher(3, name="t")
    for _ in range(6):
        dispatcher.submit(work)
    deadline = time.monotonic() + 2
    while peak < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    dispatcher.shutdown()
    assert peak == 3


def test_a_failing_item_does_not_stop_its_thread(caplog):
    done = threading.Event()
    dispatcher = Dispatcher(1, name="t")
    dispatcher.submit(lambda: 1 / 0)
    dispatcher.submit(done.set)
    assert done.wait(2)
    dispatcher.shutdown()
    assert "unexpected error" in caplog.text


def test_new_ids_are_uuid4_hex():
    ids = {envelope.new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in list(ids)[:500]:
        parsed = uuid.UUID(value)
        assert parsed.hex == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_drawn_ahead_are_per_thread_and_never_shared_with_a_forked_child():
    import os

    envelope.new_id()  # the buffer now holds ids this process has not used yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, envelope.new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    parents = {envelope.new_id() for _ in range(300)}
    others: list[str] = []
    thread = threading.Thread(target=lambda: others.extend(envelope.new_id() for _ in range(300)))
    thread.start()
    thread.join()
    assert child not in parents
    assert len(parents | set(others)) == 600
