"""``apublish`` batches: one hand-over per loop iteration (or chunk), confirms back in batches.

A :class:`HeldTransport` keeps what it is given and lets the test play the
I/O thread (claim, then settle from another thread), so each promise of
:mod:`hubbub.producers.aio` is checked without a broker: how many
``send_many`` calls, which message fails, what a timeout or a cancellation
does, and several loops on one publisher.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Sequence

import pytest

from hubbub import OutgoingEvent, Publisher
from hubbub.errors import BrokerConnectionError, PublishConnectionError, PublishError
from hubbub.producers.aio import CHUNK
from hubbub.transport.base import Pending


class HeldTransport:
    """Keeps every batch; ``auto`` settles each from a thread of its own, as an I/O thread."""

    blocked = None

    def __init__(self, *, auto: bool = False, live: bool = True) -> None:
        self.batches: list[list[Pending]] = []
        self.auto = auto
        self.live = live
        self.connects = 0
        self.connect_error: Exception | None = None
        self._lock = threading.Lock()

    def connect(self) -> None:
        with self._lock:
            self.connects += 1
        if self.connect_error is not None:
            raise self.connect_error
        self.live = True

    def send_many(self, pending: Sequence[Pending]) -> None:
        with self._lock:
            self.batches.append(list(pending))
        if self.auto:
            threading.Thread(target=self.settle_all, args=(list(pending),)).start()

    @staticmethod
    def settle_all(pending: list[Pending]) -> None:
        for message in pending:
            if message.claim():
                refused = message.outbound.routing_key == "refused"
                message.settle(PublishError("the broker refused the message") if refused else None)

    @property
    def sent(self) -> list[Pending]:
        return [message for batch in self.batches for message in batch]

    def close(self, timeout: float = 10.0) -> None:
        self.live = False


def publisher(transport: HeldTransport, **options) -> Publisher:
    return Publisher("events", url="amqp://127.0.0.1:1/", transport=transport, **options)


def ids_of(pending: list[Pending]) -> list[str | None]:
    return [message.outbound.message.message_id for message in pending]


def test_concurrent_apublish_calls_are_handed_over_in_one_send_many_per_loop_iteration():
    link = HeldTransport(auto=True)
    pub = publisher(link)

    async def app():
        first = await asyncio.gather(*(pub.apublish("a.b", {"n": n}) for n in range(CHUNK)))
        second = await asyncio.gather(*(pub.apublish("a.b", {"n": n}) for n in range(5)))
        return first, second

    first, second = asyncio.run(app())
    assert [len(batch) for batch in link.batches] == [CHUNK, 5]
    assert ids_of(link.batches[0]) == first and ids_of(link.batches[1]) == second


def test_more_callers_in_one_iteration_are_handed_over_a_chunk_at_a_time_as_they_come():
    link = HeldTransport(auto=True)
    pub = publisher(link)
    sent_before_the_last_caller: list[int] = []

    async def last() -> str:
        sent_before_the_last_caller.append(len(link.sent))
        return await pub.apublish("a.b", "last")

    async def app():
        calls = [pub.apublish("a.b", {"n": n}) for n in range(2 * CHUNK + 9)]
        return await asyncio.gather(*calls, last())

    ids = asyncio.run(app())
    assert [len(batch) for batch in link.batches] == [CHUNK, CHUNK, 10]
    assert sent_before_the_last_caller == [2 * CHUNK]
    assert ids_of(link.sent) == ids


def test_without_a_connection_a_chunk_waits_for_the_one_connect_off_the_loop():
    link = HeldTransport(auto=True, live=False)
    pub = publisher(link)

    async def app():
        return await asyncio.gather(*(pub.apublish("a", {"n": n}) for n in range(CHUNK + 50)))

    ids = asyncio.run(app())
    assert link.connects == 1
    assert [len(batch) for batch in link.batches] == [CHUNK + 50] and ids_of(link.sent) == ids


def test_apublish_many_and_apublish_share_a_hand_over():
    link = HeldTransport(auto=True)
    pub = publisher(link)

    async def app():
        return await asyncio.gather(
            pub.apublish("a.b", 1), pub.apublish_many(OutgoingEvent("a.c", n) for n in range(3))
        )

    one, many = asyncio.run(app())
    assert len(link.batches) == 1 and ids_of(link.batches[0]) == [one, *many]


def test_apublish_waits_for_the_confirm_and_a_refused_event_raises_with_its_id():
    link = HeldTransport()
    pub = publisher(link)

    async def app():
        tasks = [asyncio.create_task(pub.apublish(key, {})) for key in ("ok", "refused", "ok")]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in tasks)  # handed over, not confirmed yet
        settler = threading.Thread(target=link.settle_all, args=(link.sent,))
        settler.start()
        settler.join()
        return await asyncio.gather(*tasks, return_exceptions=True)

    ok, refused, also_ok = asyncio.run(app())
    assert isinstance(refused, PublishError) and "refused" in str(refused)
    assert refused.failed == [link.sent[1].outbound.message.message_id]
    assert [ok, also_ok] == [ids_of(link.sent)[0], ids_of(link.sent)[2]]


def test_the_confirms_of_a_batch_wake_the_loop_once():
    link = HeldTransport()
    pub = publisher(link)
    wakes = []

    async def app():
        loop = asyncio.get_running_loop()
        wake = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a: wakes.append(a) or wake(*a)  # type: ignore[method-assign]
        tasks = [asyncio.create_task(pub.apublish("a", {"n": n})) for n in range(300)]
        await asyncio.sleep(0.01)
        settler = threading.Thread(target=link.settle_all, args=(link.sent,))
        settler.start()
        settler.join()  # the loop is held: all 300 confirms arrive before it runs again
        return await asyncio.gather(*tasks)

    ids = asyncio.run(app())
    assert ids == ids_of(link.sent) and len(wakes) == 1


def test_apublish_many_names_exactly_the_refused_ids():
    pub = publisher(HeldTransport(auto=True))
    events = [OutgoingEvent("ok", 1, message_id="a"), OutgoingEvent("refused", 2, message_id="b")]
    with pytest.raises(PublishError, match="1 of 2 events were not confirmed") as caught:
        asyncio.run(pub.apublish_many(events))
    assert caught.value.failed == ["b"]


def test_no_confirm_within_the_timeout_raises_the_timeout_text_and_a_late_confirm_is_ignored():
    link = HeldTransport()
    pub = publisher(link, confirm_timeout=0.2)

    async def app():
        results = await asyncio.gather(
            *(pub.apublish("a", {}) for _ in range(3)), return_exceptions=True
        )
        link.settle_all(link.sent)  # too late: nobody waits, nothing breaks
        await asyncio.sleep(0.05)
        return results

    results = asyncio.run(app())
    assert all(isinstance(r, PublishError) for r in results)
    assert all(r.failed == [i] for r, i in zip(results, ids_of(link.sent), strict=True))
    assert "did not confirm within 0.2 s" in str(results[0])
    assert "publish it again with the same id" in str(results[0])


def test_apublish_many_past_the_timeout_names_only_the_unconfirmed_ids():
    link = HeldTransport()
    pub = publisher(link, confirm_timeout=0.2)

    async def app():
        task = asyncio.create_task(
            pub.apublish_many(OutgoingEvent("a", n, message_id=f"m{n}") for n in range(4))
        )
        await asyncio.sleep(0.05)
        link.settle_all([link.sent[0], link.sent[2]])
        await task

    with pytest.raises(PublishError, match=r"2 of 4 .*did not confirm within 0\.2 s") as caught:
        asyncio.run(app())
    assert caught.value.failed == ["m1", "m3"]


def test_a_timeout_withdraws_a_message_the_io_thread_has_not_taken():
    link = HeldTransport()
    with pytest.raises(PublishError, match="did not confirm"):
        asyncio.run(publisher(link, confirm_timeout=0.1).apublish("a", {}))
    assert not link.sent[0].claim()


def test_cancelling_before_the_hand_over_withdraws_the_message():
    link = HeldTransport(auto=True)
    pub = publisher(link)

    async def app():
        doomed = asyncio.create_task(pub.apublish("a", {"doomed": True}))
        kept = asyncio.create_task(pub.apublish("a", {"kept": True}))
        await asyncio.sleep(0)  # both queued their message; the hand-over comes next
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return await kept

    kept = asyncio.run(app())
    assert ids_of(link.sent) == [kept]


def test_cancelling_before_the_io_thread_took_it_withdraws_it_after_that_not():
    link = HeldTransport()
    pub = publisher(link)

    async def app():
        tasks = [asyncio.create_task(pub.apublish("a", {"n": n})) for n in range(2)]
        await asyncio.sleep(0.01)  # handed over
        assert link.sent[1].claim()  # the I/O thread took the second one
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(app())
    assert len(link.sent) == 2
    assert not link.sent[0].claim()  # withdrawn: never sent
    link.sent[1].settle(None)  # a confirm for a cancelled caller is dropped


def test_cancelling_apublish_many_withdraws_what_was_not_taken():
    link = HeldTransport()
    pub = publisher(link)

    async def app():
        task = asyncio.create_task(pub.apublish_many(OutgoingEvent("a", n) for n in range(3)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(app())
    assert len(link.sent) == 3 and not any(message.claim() for message in link.sent)


def test_concurrent_callers_share_one_connect_off_the_loop():
    link = HeldTransport(auto=True, live=False)
    pub = publisher(link)

    async def app():
        return await asyncio.gather(*(pub.apublish("a", {"n": n}) for n in range(50)))

    ids = asyncio.run(app())
    assert link.connects == 1
    assert [len(batch) for batch in link.batches] == [50] and ids_of(link.sent) == ids


def test_an_unreachable_broker_fails_every_caller_with_its_own_id_and_sends_nothing():
    link = HeldTransport(auto=True, live=False)
    link.connect_error = BrokerConnectionError("cannot connect to 127.0.0.1:1: refused")
    pub = publisher(link)

    async def app():
        single = await asyncio.gather(
            *(pub.apublish("a", {}, message_id=f"m{n}") for n in range(3)),
            return_exceptions=True,
        )
        with pytest.raises(PublishConnectionError) as many:
            await pub.apublish_many(OutgoingEvent("a", n, message_id=f"x{n}") for n in range(2))
        return single, many.value

    single, many = asyncio.run(app())
    assert [type(e) for e in single] == [PublishConnectionError] * 3
    assert [e.failed for e in single] == [["m0"], ["m1"], ["m2"]]
    assert "nothing was sent" in str(single[0])
    assert many.failed == ["x0", "x1"]
    assert link.connects == 2 and link.sent == []


def test_two_loops_in_two_threads_share_one_publisher():
    link = HeldTransport(auto=True)
    pub = publisher(link)
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def thread(name: int) -> None:
        async def app():
            return await asyncio.gather(*(pub.apublish("a", {"n": n}) for n in range(200)))

        try:
            results[name] = asyncio.run(app())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert sorted(len(ids) for ids in results.values()) == [200, 200]
    assert sorted(ids_of(link.sent)) == sorted(results[0] + results[1])


def test_a_finished_loop_is_not_kept_alive_by_the_publisher():
    pub = publisher(HeldTransport(auto=True))
    for _ in range(3):
        asyncio.run(pub.apublish("a", {}))
    gc.collect()
    assert len(pub._senders) == 0
