"""Handlers that cannot work are refused before they run: generators, wrong signatures,
``dont_retry`` names that match nothing; an async def runs, and a handler that returns
an awaitable is awaited, never acked unrun; a process imports only the handlers it runs."""

from __future__ import annotations

import functools
import gc
import logging
import textwrap
import types
import warnings

import pytest

from hubbub import Hub, Retry
from hubbub.consumers.worker import Worker
from hubbub.errors import TopologyError
from hubbub.testing import InMemoryHub
from hubbub.topology import loader

HERE = __name__
NOWHERE = "amqp://guest:guest@127.0.0.1:1/%2F"  # a Worker is built, never run


async def send_async(event):
    raise AssertionError("an async handler must never be run half-way")


async def stream_async(event):
    yield event


def returns_coroutine(event):
    return send_async(event)


class Awaitable:
    def __await__(self):
        yield None


def returns_awaitable(event):
    return Awaitable()


@types.coroutine
def legacy_coroutine(event):
    yield None


def returns_legacy_coroutine(event):
    return legacy_coroutine(event)


class AsyncCallable:
    async def __call__(self, event):
        return None


class Callable_:
    def __call__(self, event, extra=None):
        return None


class HandlesOnConstruction:
    def __init__(self, event):
        self.event = event


def no_argument():
    return None


def two_arguments(event, other):
    return None


def keyword_only(*, event):
    return None


def event_and_context(context, event):
    return None


def one_argument(event):
    return None


def generator(event):
    yield event


def everything(*args, **kwargs):
    return None


partial_ok = functools.partial(event_and_context, "ctx")
partial_async = functools.partial(send_async)
async_callable = AsyncCallable()
callable_ok = Callable_()


class Outer:
    class NestedError(Exception):
        pass


def topology(*subscribers: tuple[str, str], dont_retry: list[str] | None = None) -> str:
    lines = ["hub: h", "subscribers:"]
    for name, handler in subscribers:
        retry = f", retry: {{dont_retry: {dont_retry}}}" if dont_retry is not None else ""
        lines.append(f"  {name}: {{handler: '{HERE}:{handler}', topics: [t]{retry}}}")
    return "\n".join(lines) + "\n"


def validate_problems(text: str) -> list[str]:
    with pytest.raises(TopologyError) as info:
        loader.loads(text, source="topo.yaml", check_handlers=True)
    return info.value.problems


# -- item 1: async handlers are run, never acked unrun ---------------------------------------


ran: list[str] = []


async def records_async(event):
    ran.append(event.id)


def returns_records_coroutine(event):
    return records_async(event)


class RecordingAwaitable:
    def __init__(self, event):
        self.event = event

    def __await__(self):
        yield from ()
        ran.append(self.event.id)


@types.coroutine
def legacy_recording(event):
    yield from ()
    ran.append(event.id)


@pytest.mark.parametrize("handler", ["send_async", "partial_async", "async_callable"])
def test_validate_accepts_async_handlers(handler):
    assert loader.loads(topology(("s", handler)), source="topo.yaml", check_handlers=True)


def test_validate_refuses_an_async_generator_saying_what_to_do():
    (problem,) = validate_problems(topology(("s", "stream_async")))
    assert problem == (
        f"subscribers.s.handler: handler '{HERE}:stream_async' is a generator function "
        "(it yields), so its body would never run: make it a plain def or an async def "
        "that returns"
    )


def test_the_decorator_and_a_worker_take_an_async_def():
    hub = Hub("h")

    @hub.subscriber("s", topics=["t"])
    async def send(event):
        return None

    assert [s.name for s in hub.topology.subscribers] == ["s"]
    spec = loader.loads(topology(("s", "one_argument"), ("a", "one_argument")))
    worker = Worker(spec, {"s": one_argument, "a": send_async}, url=NOWHERE)
    assert worker.subscribers == ["s", "a"]


@pytest.mark.parametrize(
    "handler",
    [
        returns_records_coroutine,
        functools.partial(records_async),
        RecordingAwaitable,
        legacy_recording,
    ],
    ids=[
        "plain-def-returning-a-coroutine",
        "partial-of-async-def",
        "object-with-await",
        "generator-based-coroutine",
    ],
)
def test_a_handler_returning_an_awaitable_is_awaited_before_its_ack(handler):
    ran.clear()
    hub = InMemoryHub("h")
    hub.subscriber("s", topics=["t"], retry={"attempts": 5})(_plain(handler))
    event_id = hub.publish("t", {"n": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hub.run_until_idle()
        gc.collect()  # a coroutine left un-awaited warns "never awaited" when collected
    assert ran == [event_id]
    assert [a.outcome for a in hub.attempts("s")] == ["ack"]
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_a_returned_awaitable_that_raises_fails_the_event_through_the_retry_policy():
    async def fails(event):
        raise Retry("later", after=30)

    hub = InMemoryHub("h")
    hub.subscriber("s", topics=["t"], retry={"attempts": 5})(_plain(fails))
    hub.publish("t", {})
    hub.run_until_idle()
    assert [(a.outcome, a.delay) for a in hub.attempts("s")] == [("retry", 30.0)]


def test_without_a_loop_to_run_it_a_returned_awaitable_is_dead_lettered_not_acked():
    from hubbub.consumers import failure
    from hubbub.consumers.handling import handle
    from hubbub.message import Delivery, Message

    spec = loader.loads(topology(("s", "one_argument"))).subscriber("s")
    message = Message(body=b"{}", message_id="e1", content_type="application/json")
    delivery = Delivery(1, "h", "t", False, message)
    outcome = handle(spec, "h.s", returns_records_coroutine, delivery)
    assert outcome.action == "dead-letter"
    assert outcome.headers[failure.REASON] == "handler returned an awaitable"


@pytest.mark.parametrize(
    "value", [1, "done", {"n": 1}, (x for x in ()), Awaitable, types.SimpleNamespace(close=None)]
)
def test_a_handler_returning_anything_else_is_acked(value):
    hub = InMemoryHub("h")
    hub.subscriber("s", topics=["t"])(lambda event: value)
    hub.publish("t", {})
    hub.run_until_idle()
    assert [a.outcome for a in hub.attempts("s")] == ["ack"]
    assert hub.dead_lettered() == []


def _plain(handler):
    """``handler`` behind a plain def, as code that slips past the decorator's check would be."""

    def plain(event):
        return handler(event)

    return plain


# -- item 12: signatures and dont_retry ------------------------------------------------------


def test_validate_reports_every_handler_that_cannot_take_the_event():
    text = topology(
        ("none", "no_argument"),
        ("two", "two_arguments"),
        ("kw", "keyword_only"),
        ("gen", "generator"),
        ("ok1", "one_argument"),
        ("ok2", "partial_ok"),
        ("ok3", "callable_ok"),
        ("ok4", "everything"),
        ("ok5", "HandlesOnConstruction"),  # a class: called with the event, builds an instance
        ("cls", "Callable_"),  # its instances would do, the class itself takes no event
    )
    problems = validate_problems(text)
    assert problems == [
        f"subscribers.none.handler: handler '{HERE}:no_argument' must accept exactly one "
        "positional argument, the event, but its signature is () (too many positional "
        "arguments): write it as def handler(event)",
        f"subscribers.two.handler: handler '{HERE}:two_arguments' must accept exactly one "
        "positional argument, the event, but its signature is (event, other) (missing a "
        "required argument: 'other'): write it as def handler(event)",
        f"subscribers.kw.handler: handler '{HERE}:keyword_only' must accept exactly one "
        "positional argument, the event, but its signature is (*, event) (too many positional "
        "arguments): write it as def handler(event)",
        f"subscribers.gen.handler: handler '{HERE}:generator' is a generator function (it "
        "yields), so its body would never run: make it a plain def or an async def that returns",
        f"subscribers.cls.handler: handler '{HERE}:Callable_' must accept exactly one "
        "positional argument, the event, but its signature is () (too many positional "
        "arguments): write it as def handler(event)",
    ]


def test_validate_imports_and_checks_every_dont_retry_name():
    names = [
        "KeyError",
        "json.decoder.JSONDecodeError",
        f"{HERE}.Outer.NestedError",
        "Frod",
        "shop_xyz.handlers.Frod",
        "json.Frod",
        "json.dumps",
        "json.JSONDecodeError",
    ]
    problems = validate_problems(topology(("s", "one_argument"), dont_retry=names))
    where = "subscribers.s.retry.dont_retry"
    assert problems == [
        f"{where}[3]: 'Frod' is not a built-in exception: write the full path of the type, "
        "e.g. shop.errors.PaymentDeclined",
        f"{where}[4]: cannot import 'shop_xyz.handlers.Frod': no module named 'shop_xyz'",
        f"{where}[5]: cannot import 'json.Frod': json has no attribute 'Frod'",
        f"{where}[6]: 'json.dumps' is not an exception type (it is function)",
        f"{where}[7]: 'json.JSONDecodeError' is defined as 'json.decoder.JSONDecodeError': "
        "write that name (an exception is matched by where its type is defined)",
    ]


def test_dont_retry_problems_come_with_a_handler_that_does_not_import():
    text = (
        "hub: h\nsubscribers:\n"
        "  s: {handler: 'no_such_module_xyz:f', topics: [t], retry: {dont_retry: [Frod]}}\n"
    )
    problems = validate_problems(text)
    assert [p.split(":")[0] for p in problems] == [
        "subscribers.s.handler",
        "subscribers.s.retry.dont_retry[0]",
    ]


def test_the_hub_checks_handlers_and_dont_retry_when_it_builds_its_handlers():
    hub = Hub(topology=loader.loads(topology(("file", "two_arguments"))), url=NOWHERE)

    @hub.subscriber("code", topics=["t"], retry={"dont_retry": ["Frod"]})
    def code(event):
        return None

    with pytest.raises(TopologyError) as info:
        hub.handlers()
    assert info.value.source == "hub 'h'"
    assert [p.split(":")[0] for p in info.value.problems] == [
        "subscribers.file.handler",
        "subscribers.code.retry.dont_retry[0]",
    ]
    with pytest.raises(TopologyError, match="must accept exactly one positional argument"):
        hub.worker()


def test_a_handler_replaced_after_the_first_check_is_checked_again(monkeypatch):
    import sys

    hub = InMemoryHub(topology=loader.loads(topology(("s", "one_argument"))))
    assert hub.handlers() == {"s": one_argument}
    monkeypatch.setattr(sys.modules[HERE], "one_argument", no_argument)  # as a test might
    with pytest.raises(TopologyError, match="must accept exactly one positional argument"):
        hub.handlers()


def test_the_decorator_refuses_a_function_that_cannot_take_the_event():
    hub = Hub("h")
    with pytest.raises(TopologyError, match=r"signature is \(\) \(too many positional"):
        hub.subscriber("s", topics=["t"])(no_argument)


def test_a_worker_refuses_handlers_given_in_code_naming_each_callable():
    spec = loader.loads(topology(("s", "one_argument"), dont_retry=["KeyErorr"]))
    with pytest.raises(TopologyError) as info:
        Worker(spec, {"s": lambda: None}, url=NOWHERE)
    assert [p.split(": ", 2)[:2] for p in info.value.problems] == [
        ["subscribers.s.handler", f"handler '{HERE}:test_a_worker_refuses_handlers_given_in_code"
         "_naming_each_callable.<locals>.<lambda>' must accept exactly one positional argument, "
         "the event, but its signature is () (too many positional arguments)"],
        ["subscribers.s.retry.dont_retry[0]", "'KeyErorr' is not a built-in exception"],
    ]  # fmt: skip


# -- item 13: a process imports only the handlers it runs ------------------------------------


def test_a_hub_imports_only_the_handlers_of_the_subscribers_it_runs():
    text = (
        "hub: h\nsubscribers:\n"
        f"  good: {{handler: '{HERE}:one_argument', topics: [t]}}\n"
        "  broken: {handler: 'no_such_module_xyz:f', topics: [t]}\n"
    )
    hub = Hub(topology=loader.loads(text), url=NOWHERE)
    assert hub.handlers(["good"]) == {"good": one_argument}
    worker = hub.worker(["good"])
    assert worker.subscribers == ["good"]
    with pytest.raises(TopologyError, match=r"subscribers\.broken\.handler: cannot import handler"):
        hub.handlers()


# -- item 20: noise ---------------------------------------------------------------------------


def test_a_requested_retry_is_info_and_a_failure_is_a_warning(caplog):
    hub = InMemoryHub("h")

    @hub.subscriber("s", topics=["t"], retry={"attempts": 3, "jitter": False})
    def handler(event):
        if event.attempt == 1:
            raise Retry("the bank is busy", after=30)
        raise KeyError("card")

    hub.publish("t", {})
    with caplog.at_level(logging.INFO, logger="hubbub.consumers"):
        hub.advance(minutes=5)
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [a.outcome for a in hub.attempts("s")] == ["retry", "retry", "dead-letter"]
    assert [level for level, _ in records] == ["INFO", "WARNING", "WARNING"]
    assert records[0][1].endswith(
        "s asked for a retry on attempt 1, retrying in 30.0s: the bank is busy"
    )
    assert "failed on attempt 2 in s, retrying in" in records[1][1]


def test_an_unmatched_topic_is_warned_about_once_per_hub_in_bounded_memory(caplog, monkeypatch):
    from hubbub import hub as hub_module

    hub = InMemoryHub("h")
    hub.subscriber("s", topics=["order.*"])(one_argument)
    with caplog.at_level(logging.WARNING, logger="hubbub"):
        for _ in range(3):
            hub.publish("user.deleted")
        hub.publish("user.created")
        hub.publish("order.placed")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "no subscriber of hub 'h' matches 'user.deleted'",
        "no subscriber of hub 'h' matches 'user.created'",
    ]
    assert len(hub.unrouted()) == 4  # each still parked

    monkeypatch.setattr(hub_module, "MAX_WARNED_TOPICS", 10)
    for n in range(25):
        hub.publish(f"noise.{n}")
    assert len(hub._warned) <= 10


def test_unmatched_topics_are_remembered_per_hub(caplog):
    first, second = InMemoryHub("h"), InMemoryHub("h")
    for hub in (first, second):
        hub.subscriber("s", topics=["order.*"])(one_argument)
    with caplog.at_level(logging.WARNING, logger="hubbub"):
        first.publish("user.deleted")
        second.publish("user.deleted")
    assert len(caplog.records) == 2


def test_checks_do_not_depend_on_the_file_order():
    # A handler problem and a file problem are reported together (as validate always did).
    text = textwrap.dedent(
        f"""
        hub: h
        subscribers:
          s: {{handler: '{HERE}:no_argument', topics: ['x*']}}
        """
    )
    problems = validate_problems(text)
    assert problems[0].startswith(f"subscribers.s.handler: handler '{HERE}:no_argument' must")
    assert problems[1].startswith("subscribers.s.topics[0]: pattern 'x*'")
