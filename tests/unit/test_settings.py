"""A subscriber's ``settings:`` are checked against the handler's ``settings`` parameter
(types, required keys, defaults, unknown keys), every problem one line starting with its
dotted path, and bound once so the handler gets ``settings=`` on every event."""

from __future__ import annotations

import dataclasses
import functools
import os
import textwrap
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Secret, SecretBytes, SecretStr, field_validator
from typing_extensions import NotRequired, TypedDict

from hubbub.callables import is_async
from hubbub.consumers.worker import Worker
from hubbub.errors import TopologyError
from hubbub.middleware import Middleware
from hubbub.testing import InMemoryHub
from hubbub.topology import loader, settings
from hubbub.topology.model import Subscriber
from hubbub.topology.references import describe, handler_problems, visibility_of

HERE = __name__
NOWHERE = "amqp://guest:guest@127.0.0.1:1/%2F"  # a Worker is built, never run


class Reminder(BaseModel):
    days: int
    template: str = "reminder"
    recipients: list[str] = []


@dataclasses.dataclass
class Threshold:
    limit: float
    unit: str = "EUR"


class Labels(TypedDict):
    team: str
    channel: NotRequired[str]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = "x"


calls: list[tuple[str, Any]] = []


def remind(event, *, settings: Reminder):
    calls.append((event.topic, settings))


def threshold(event, settings: Threshold):
    calls.append((event.topic, settings))


def labels(event, *, settings: Labels):
    calls.append((event.topic, settings))


def anything(event, *, settings: dict[str, int]):
    calls.append((event.topic, settings))


def untyped(event, *, settings):
    calls.append((event.topic, settings))


def open_model(event, *, settings: Open):
    calls.append((event.topic, settings))


def optional(event, *, settings: Reminder = Reminder(days=7)):  # noqa: B008 - a fixed default
    calls.append((event.topic, settings))


async def aremind(event, *, settings: Reminder):
    calls.append((event.topic, settings))


def plain(event):
    calls.append((event.topic, None))


@pytest.fixture(autouse=True)
def _clear():
    calls.clear()


def sub(handler: str, values: dict[str, Any] | None = None, name: str = "s") -> Subscriber:
    return Subscriber(name=name, handler=f"{HERE}:{handler}", topics=("t",), settings=values or {})


def problems(handler, values, name="s"):
    return settings.problems(sub(handler.__name__, values, name), handler, "ref")


def test_a_model_validates_types_and_fills_defaults():
    bound = settings.bind(sub("remind", {"days": "3"}), remind)
    bound(type("E", (), {"topic": "t"})())
    assert calls == [("t", Reminder(days=3, template="reminder", recipients=[]))]


@pytest.mark.parametrize(
    ("handler", "values", "expected"),
    [
        (remind, {"days": 3, "recipients": ["a@x"]}, Reminder(days=3, recipients=["a@x"])),
        (threshold, {"limit": 10}, Threshold(limit=10.0)),
        (labels, {"team": "growth"}, {"team": "growth"}),
        (anything, {"a": 1, "b": "2"}, {"a": 1, "b": 2}),
        (untyped, {"whatever": [1]}, {"whatever": [1]}),
    ],
)
def test_each_kind_of_schema_gives_the_handler_its_value(handler, values, expected):
    assert problems(handler, values) == []
    settings.bind(sub(handler.__name__, values), handler)(type("E", (), {"topic": "t"})())
    assert calls == [("t", expected)]


def test_wrong_types_and_missing_keys_are_one_line_each_under_their_path():
    assert problems(remind, {"days": "soon", "recipients": "a@x"}) == [
        "subscribers.s.settings.days: Input should be a valid integer, unable to parse string "
        "as an integer (got 'soon')",
        "subscribers.s.settings.recipients: write a list: [first, second] (or one item per "
        "line starting with '- ')",
    ]
    assert problems(threshold, {"unit": "USD"}) == [
        "subscribers.s.settings.limit: required: add it"
    ]


def test_nested_problems_name_the_item():
    assert problems(remind, {"days": 1, "recipients": ["ok", 5]}) == [
        "subscribers.s.settings.recipients[1]: Input should be a valid string (got 5)"
    ]


@pytest.mark.parametrize("handler", [remind, threshold, labels])
def test_an_unknown_key_is_reported_with_the_known_ones(handler):
    values = {"days": 1, "limit": 1, "team": "x"}
    found = problems(handler, values)
    assert found and all(p.startswith("subscribers.s.settings.") for p in found)
    assert any("unknown key (known: " in p and "check the spelling" in p for p in found)


def test_an_unknown_key_names_what_the_type_knows():
    assert problems(remind, {"days": 1, "dayz": 2}) == [
        "subscribers.s.settings.dayz: unknown key (known: days, recipients, template): "
        "check the spelling"
    ]


def test_types_that_take_any_key_take_any_key():
    assert problems(anything, {"x": 1}) == []
    assert problems(open_model, {"name": "y", "more": 1}) == []


def test_settings_for_a_handler_without_a_settings_parameter_are_refused():
    assert problems(plain, {"days": 1}) == [
        "subscribers.s.settings: handler 'ref' takes no settings: remove them or add a "
        "`settings` parameter to the handler"
    ]


def test_required_settings_that_are_not_given_at_all_are_one_line():
    assert problems(remind, {}) == [
        "subscribers.s.settings: handler 'ref' needs settings (days): add them under settings"
    ]


def test_a_parameter_with_a_default_needs_no_settings_and_keeps_its_default():
    assert problems(optional, {}) == []
    handler = settings.bind(sub("optional"), optional)
    assert handler is optional
    assert problems(optional, {"days": "x"})  # given settings are still checked


def test_binding_is_done_once_and_never_twice():
    bound = settings.bind(sub("remind", {"days": 1}), remind)
    assert isinstance(bound, functools.partial)
    assert settings.is_bound(bound)
    assert settings.bind(sub("remind", {"days": 2}), bound) is bound
    wrapped = functools.wraps(bound)(lambda event: bound(event))
    assert settings.is_bound(wrapped)


def test_bind_raises_every_problem():
    with pytest.raises(TopologyError) as caught:
        settings.bind(sub("remind", {"days": "x", "extra": 1}), remind)
    assert len(caught.value.problems) == 2


def test_an_async_handler_with_settings_stays_async_when_bound():
    bound = settings.bind(sub("aremind", {"days": 1}), aremind)
    assert is_async(bound)
    assert describe(bound) == f"partial({HERE}:aremind)"
    assert (bound.__module__, bound.__qualname__) == (HERE, "aremind")  # type: ignore[union-attr]


def test_a_handler_taking_event_and_keyword_settings_is_accepted():
    assert handler_problems(remind, "r") == []
    assert handler_problems(threshold, "r") == []
    assert handler_problems(aremind, "r") == []


def file_text(handler: str, values: str = "") -> str:
    block = f"\n    settings:\n{textwrap.indent(values, '      ')}" if values else ""
    return f"hub: h\nsubscribers:\n  s:\n    handler: {HERE}:{handler}\n    topics: [t]{block}\n"


def test_validate_reports_settings_problems_of_the_file():
    text = file_text("remind", "days: soon\ntemplat: x\n")
    with pytest.raises(TopologyError) as caught:
        loader.loads(text, check_handlers=True)
    assert caught.value.problems == [  # in file order
        "subscribers.s.settings.days: Input should be a valid integer, unable to parse string "
        "as an integer (got 'soon')",
        "subscribers.s.settings.templat: unknown key (known: days, recipients, template): "
        "check the spelling",
    ]
    loader.loads(file_text("remind", "days: 3\n"), check_handlers=True)  # fine


def test_the_in_memory_hub_calls_file_handlers_with_their_settings():
    hub = InMemoryHub(topology=loader.loads(file_text("remind", "days: 3\n")))
    hub.publish("t", {})
    hub.run_until_idle()
    assert calls == [("t", Reminder(days=3))]


def test_the_in_memory_hub_refuses_to_run_bad_settings():
    hub = InMemoryHub(topology=loader.loads(file_text("remind", "days: x\n")))
    with pytest.raises(TopologyError, match=r"subscribers\.s\.settings\.days: "):
        hub.run_until_idle()


def test_decorated_handlers_take_settings_in_code_too():
    hub = InMemoryHub("h")
    seen = []

    @hub.subscriber("s", topics=["t"], settings={"days": 2})
    def handler(event, *, settings: Reminder):
        seen.append(settings.days)

    @hub.subscriber("a", topics=["t"], settings={"days": 5})
    async def ahandler(event, *, settings: Reminder):
        seen.append(settings.days)

    hub.publish("t", {})
    hub.run_until_idle()
    assert sorted(seen) == [2, 5]


def test_decorated_settings_are_checked_when_the_handlers_are_built():
    hub = InMemoryHub("h")

    @hub.subscriber("s", topics=["t"], settings={"days": 2})
    def handler(event):
        pass

    with pytest.raises(TopologyError, match="takes no settings"):
        hub.handlers()


class Counting(Middleware):
    def __init__(self) -> None:
        self.names: list[str] = []

    def consume(self, event, call_next):
        self.names.append(event.subscriber)
        return call_next(event)


def test_middleware_wraps_a_handler_with_settings():
    counting = Counting()
    hub = InMemoryHub(
        topology=loader.loads(file_text("remind", "days: 3\n")), middleware=[counting]
    )
    hub.publish("t", {})
    hub.run_until_idle()
    assert counting.names == ["s"] and calls == [("t", Reminder(days=3))]


def test_a_worker_given_handlers_in_code_checks_and_binds_their_settings():
    topology = loader.loads(file_text("remind", "days: x\n"))
    with pytest.raises(TopologyError, match=r"subscribers\.s\.settings\.days"):
        Worker(topology, {"s": remind}, url=NOWHERE)
    good = loader.loads(file_text("remind", "days: 4\n"))
    worker = Worker(good, {"s": remind}, url=NOWHERE)
    assert worker.subscribers == ["s"]


class Credentials(BaseModel):
    user: str
    password: SecretStr
    token: Secret[int] | None = None
    note: str = ""


def with_credentials(event: Any, *, settings: Credentials) -> None:
    pass


@dataclasses.dataclass
class Signed:
    key: SecretBytes
    region: str = "eu"


def with_signed(event: Any, *, settings: Signed) -> None:
    pass


def test_settings_a_type_marks_secret_are_known_by_their_keys():
    """``plan`` shows only values of declared keys that are not secret (SecretStr & co)."""
    seen = settings.visibility(with_credentials)
    assert seen.secret == {"password", "token"}
    assert seen.declared == {"user", "password", "token", "note"}
    assert settings.visibility(with_signed).secret == {"key"}
    assert settings.visibility(lambda event, settings: None).declared is None
    assert visibility_of(f"{HERE}:with_signed").known
    assert not visibility_of("no_such_module_here:f").known


class Mailbox(BaseModel):
    password_env: str

    @field_validator("password_env")
    @classmethod
    def _set(cls, value: str) -> str:
        if value not in os.environ:
            raise settings.environment_problem(f"environment variable {value} is not set")
        return value


def mailbox(event, *, settings: Mailbox): ...


def test_a_problem_of_where_it_runs_is_apart_from_the_files_and_still_stops_the_binding(
    monkeypatch,
):
    """``topology validate`` warns of it (the file is right), a consumer refuses it."""
    monkeypatch.delenv("MAILBOX_PASSWORD", raising=False)
    sub = Subscriber(
        name="s",
        handler=f"{HERE}:mailbox",
        topics=("t",),
        settings={"password_env": "MAILBOX_PASSWORD"},
    )
    problem = (
        "subscribers.s.settings.password_env: environment variable MAILBOX_PASSWORD is not set"
    )
    assert settings.problems(sub, mailbox, "m", environment=False) == []
    assert settings.environment_problems(sub, mailbox, "m") == [problem]
    assert settings.problems(sub, mailbox, "m") == [problem]
    with pytest.raises(TopologyError, match="MAILBOX_PASSWORD is not set"):
        settings.bind(sub, mailbox)
    monkeypatch.setenv("MAILBOX_PASSWORD", "x")
    assert settings.environment_problems(sub, mailbox, "m") == []
    assert settings.bind(sub, mailbox).keywords["settings"].password_env == "MAILBOX_PASSWORD"
