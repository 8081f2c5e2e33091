"""The topology file: loading into the frozen model, and every problem reported at once."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from hubbub.errors import TopologyError
from hubbub.topology import loader
from hubbub.topology.model import (
    DEFAULT_DELIVERY_LIMIT,
    DEFAULT_PREFETCH,
    RetryPolicy,
    Subscriber,
    Topology,
)

GOOD = """
hub: events
subscribers:
  welcome-email:
    handler: example_app.actions:send_welcome_email
    topics: [user.signed_up]
    retry: {attempts: 3, backoff: 1s, max_backoff: 1m, dont_retry: [KeyError]}
  notify-sales:
    handler: example_app.actions:notify_sales
    topics: ["user.first_action.*", "billing.#"]
    prefetch: 10
    concurrency: 4
    delivery_limit: 3
"""


def problems_of(text: str, **kwargs) -> list[str]:
    with pytest.raises(TopologyError) as info:
        loader.loads(textwrap.dedent(text), source="topo.yaml", **kwargs)
    assert str(info.value).startswith("topo.yaml")
    return info.value.problems


def lined(text: str, **kwargs) -> list[tuple[int | None, str]]:
    """``(line, problem)`` of every problem of ``text``."""
    with pytest.raises(TopologyError) as info:
        loader.loads(textwrap.dedent(text), source="topo.yaml", **kwargs)
    return list(zip(info.value.lines, info.value.problems, strict=True))


def test_a_good_file_loads_into_the_frozen_model(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(GOOD)
    topology = loader.load(path, check_handlers=True)
    assert topology.hub == "events"
    assert [s.name for s in topology.subscribers] == ["welcome-email", "notify-sales"]
    welcome, sales = topology.subscribers
    assert welcome.topics == ("user.signed_up",)
    assert welcome.retry == RetryPolicy(
        attempts=3, backoff=1.0, max_backoff=60.0, jitter=True, dont_retry=("KeyError",)
    )
    assert (welcome.prefetch, welcome.concurrency, welcome.delivery_limit) == (
        DEFAULT_PREFETCH,
        1,
        DEFAULT_DELIVERY_LIMIT,
    )
    assert (sales.prefetch, sales.concurrency, sales.delivery_limit) == (10, 4, 3)
    assert topology.names.queue("notify-sales") == "events.notify-sales"
    with pytest.raises(dataclasses.FrozenInstanceError):
        topology.hub = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        welcome.topics = ("x",)  # type: ignore[misc]


def test_matching_and_lookup():
    topology = loader.loads(GOOD)
    assert [s.name for s in topology.matching("billing.invoice.paid")] == ["notify-sales"]
    assert [s.name for s in topology.matching("user.signed_up")] == ["welcome-email"]
    assert list(topology.matching("user.deleted")) == []
    assert topology.subscriber("notify-sales").prefetch == 10
    with pytest.raises(KeyError, match="known: welcome-email, notify-sales"):
        topology.subscriber("nobody")


def test_every_problem_is_reported_at_once_with_its_key():
    problems = problems_of(
        """
        hub: events
        colour: blue
        subscribers:
          a:
            handler: nomodule
            topics: ["user.*x", "a..b"]
            retries: 3
          b:
            handler: json:dumps
            topics: []
            retry: {attempts: 0, backoff: soon}
          unrouted:
            handler: json:dumps
            topics: [x]
        """
    )
    joined = "\n".join(problems)
    expected = [
        "colour: unknown key",
        "subscribers.a.handler: handler 'nomodule' must be written 'package.module:function'",
        "subscribers.a.topics[0]: pattern 'user.*x'",
        "subscribers.a.topics[1]: pattern 'a..b' has an empty word",
        "subscribers.a.retries: unknown key",
        "subscribers.b.topics: give at least one topic pattern",
        "subscribers.b.retry.attempts:",
        "subscribers.b.retry.backoff: not a duration: 'soon'",
        "subscribers.unrouted.name: subscriber name 'unrouted' is reserved",
    ]
    for fragment in expected:
        assert fragment in joined
    assert len(problems) == len(expected)


def test_names_over_the_amqp_limit_are_reported():
    problems = problems_of(
        f"""
        hub: {"h" * 200}
        subscribers:
          {"s" * 300}: {{handler: "json:dumps", topics: [x]}}
        """
    )
    assert any(p.startswith("hub: hub name is 200 bytes") and "255-byte" in p for p in problems)
    assert any(".name: subscriber name is 300 bytes" in p for p in problems)
    assert len(problems) == 2


def test_a_pattern_too_long_to_pass_through_the_delay_ladder_is_reported():
    pattern = "a." * 99 + "b"  # 199 bytes: a valid key, but not with the ladder's prefix
    problems = problems_of(
        f"hub: h\nsubscribers:\n  s: {{handler: 'json:dumps', topics: ['{pattern}']}}\n"
    )
    assert problems == [
        f"subscribers.s.topics[0]: pattern {pattern!r} is too long to be bound for delayed "
        "events (at most 197 bytes)"
    ]


def test_bad_names_say_what_is_allowed():
    problems = problems_of(
        "hub: 'my hub'\nsubscribers:\n  'a.b': {handler: 'json:dumps', topics: [x]}\n"
    )
    assert problems == [
        "hub: hub name 'my hub' may only contain letters, digits, '.', '_', '-', "
        "starting with a letter or digit",
        "subscribers.a.b.name: subscriber name 'a.b' may only contain letters, digits, '_', '-', "
        "starting with a letter or digit",
    ]


def test_duplicate_subscribers_in_yaml_are_reported_with_their_line():
    text = """
        hub: events
        subscribers:
          a: {handler: "json:dumps", topics: [x]}
          a: {handler: "json:loads", topics: [y]}
          b: {handler: "json:dumps", topics: [x], topics: [z]}
        """
    problems = problems_of(text)
    assert problems == ["'a' is defined twice", "'topics' is defined twice"]
    assert [line for line, _ in lined(text)] == [5, 6]


def test_a_yaml_merge_key_may_be_overridden_without_a_duplicate_key_error():
    """Sharing a webhook's settings with an anchor and overriding a key is plain YAML:
    the keys written in the mapping win over those merged in with ``<<:``."""
    text = """
        hub: h
        subscribers:
          a: &hook
            handler: log
            topics: [a.b]
            settings: {level: info}
          b:
            <<: *hook
            topics: [c.d]
            settings: {level: warning}
          c:
            <<: *hook
            topics: [e.f]
            topics: [g.h]
        """
    assert problems_of(text) == ["'topics' is defined twice"]
    assert [line for line, _ in lined(text)] == [15]
    topology = loader.loads(textwrap.dedent(text).replace("    topics: [g.h]\n", ""))
    assert topology.subscriber("b").settings == {"level": "warning"}
    assert topology.subscriber("b").topics == ("c.d",)
    assert topology.subscriber("b").handler == topology.subscriber("a").handler


def test_duplicate_subscribers_built_in_code_are_refused():
    sub = Subscriber(name="a", handler="m:f", topics=("x",))
    with pytest.raises(ValueError, match="'a' is defined twice"):
        Topology(hub="h", subscribers=(sub, sub))


def test_a_name_key_cannot_rename_a_subscriber():
    problems = problems_of(
        "hub: h\nsubscribers:\n  a: {name: b, handler: 'json:dumps', topics: [x]}\n"
    )
    assert problems == ["subscribers.a.name: unknown key (a subscriber's name is its key)"]


def test_handlers_that_do_not_import_are_reported_only_when_checked():
    text = """
    hub: h
    subscribers:
      a: {handler: "no_such_module_xyz:f", topics: [x]}
      b: {handler: "json:no_such_function", topics: [x]}
      c: {handler: "json:__doc__", topics: [x]}
      d: {handler: "json:dumps", topics: [x]}
    """
    assert len(loader.loads(textwrap.dedent(text)).subscribers) == 4
    problems = problems_of(text, check_handlers=True)
    assert problems == [
        "subscribers.a.handler: cannot import handler 'no_such_module_xyz:f': "
        "ModuleNotFoundError: No module named 'no_such_module_xyz'",
        "subscribers.b.handler: cannot import handler 'json:no_such_function': "
        "AttributeError: module 'json' has no attribute 'no_such_function'",
        "subscribers.c.handler: handler 'json:__doc__' is not callable",
    ]


def test_handler_problems_come_with_the_other_problems():
    problems = problems_of(
        "hub: h\nsubscribers:\n  a: {handler: 'no_such_module_xyz:f', topics: ['x*']}\n",
        check_handlers=True,
    )
    assert len(problems) == 2
    assert problems[0].startswith("subscribers.a.handler: cannot import handler")  # file order
    assert problems[1].startswith("subscribers.a.topics[0]: pattern 'x*'")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- a\n- b\n", "the file must be a mapping with 'hub' and 'subscribers'"),
        ("", "the file must be a mapping with 'hub' and 'subscribers'"),
        ("just text\n", "the file must be a mapping with 'hub' and 'subscribers'"),
        (
            "hub: h\nsubscribers: [a, b]\n",
            "subscribers: must be a mapping of subscriber name to its settings",
        ),
        ("subscribers: {}\n", "hub: required: add this key"),
        ("hub: [unclosed\n", "column 1: not valid YAML"),
        ("hub: h\n  bad: indent\n", "column 6: not valid YAML (mapping values"),
    ],
)
def test_malformed_files(text, problem):
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_a_missing_file_is_a_topology_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TopologyError) as info:
        loader.load(missing)
    assert str(info.value) == f"{missing}: cannot read the file: No such file or directory"


def test_one_problem_is_one_line_many_are_listed():
    one = TopologyError(["a: bad"], source="f.yaml")
    many = TopologyError(["a: bad", "b: worse"], source="f.yaml")
    assert str(one) == "f.yaml: a: bad"
    assert str(many) == "f.yaml: 2 problems:\n  - a: bad\n  - b: worse"
    assert one.lines == [None]


def test_a_problem_with_a_line_reads_file_colon_line():
    one = TopologyError(["a: bad"], source="f.yaml", lines=[14])
    many = TopologyError(["a: bad", "b: worse"], source="f.yaml", lines=[3, None])
    assert str(one) == "f.yaml:14: a: bad"
    assert str(many) == "f.yaml: 2 problems:\n  - f.yaml:3: a: bad\n  - b: worse"


def test_yaml_tags_that_run_code_are_refused():
    problems = problems_of("hub: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in problems[0]


def one_subscriber(*lines: str) -> str:
    return "hub: h\nsubscribers:\n  s:\n" + "".join(f"    {line}\n" for line in lines)


@pytest.mark.parametrize(
    ("lines", "topics", "settings"),
    [
        (["topics: user.signed_up"], ("user.signed_up",), {}),
        (["topics: [t]", "settings:"], ("t",), {}),
    ],
    ids=["topics-a-string", "settings-empty"],
)
def test_a_value_with_an_obvious_meaning_is_taken_so(lines, topics, settings):
    """``topics: user.signed_up`` (no brackets) is one topic; ``settings:`` left empty, none."""
    top = loader.loads(one_subscriber("handler: log", *lines), check_handlers=True)
    assert (top.subscriber("s").topics, top.subscriber("s").settings) == (topics, settings)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "topics: user.signed_up, user.deleted",
            "write topics as a list: [user.signed_up, user.deleted]",
        ),
        ("topics:", "give at least one topic pattern: [user.signed_up]"),
        (
            "topics: {a: b}",
            "write a list: [first, second] (or one item per line starting with '- ')",
        ),
    ],
    ids=["topics-with-commas", "topics-empty", "topics-a-mapping"],
)
def test_wrongly_shaped_topics_are_explained_in_the_files_words(line, problem):
    """pydantic said "Input should be a valid tuple": Python's words, not the file's."""
    assert problems_of(one_subscriber("handler: log", line)) == [f"subscribers.s.topics: {problem}"]


@pytest.mark.parametrize("value", ["[1, 2]", "level"])
def test_settings_that_are_not_key_value_lines_say_what_to_write(value):
    found = problems_of(one_subscriber("handler: log", "topics: [t]", f"settings: {value}"))
    assert found == [
        "subscribers.s.settings: settings are key: value lines, indented under settings: "
        "(leave settings out for none)"
    ]


def test_a_yes_read_as_true_where_text_is_wanted_says_quote_it_in_the_files_word():
    text = one_subscriber(
        "handler: webhook",
        "topics: [t]",
        "description: no",
        "settings: {url: 'https://crm.example/hook', headers: {X-Flag: yes, X-On: True}}",
    )
    assert problems_of(text, check_handlers=True) == [
        "subscribers.s.description: must be text: YAML reads no without quotes as false: "
        "quote it: 'no'",
        "subscribers.s.settings.headers.X-Flag: must be text: YAML reads yes without quotes as "
        "true: quote it: 'yes'",
        "subscribers.s.settings.headers.X-On: must be text: YAML reads True without quotes as "
        "true: quote it: 'True'",
    ]


def test_an_empty_list_in_settings_says_how_many_items_to_give():
    text = one_subscriber("handler: republish", "topics: [t]", "settings: {topic: []}")
    assert problems_of(text, check_handlers=True) == [
        "subscribers.s.settings.topic: give at least 1 item"
    ]


def test_settings_are_checked_when_other_keys_of_the_subscriber_are_wrong_and_in_file_order():
    """Every problem at once: a wrong topic used to hide the webhook's settings problems
    until it was fixed (one more round of validate for each)."""
    text = textwrap.dedent(
        """\
        hub: h
        subscribers:
          hook:
            handler: webhook
            settings:
              timeout: soon
              url: ftp://crm.example
            topics: ["a b"]
            retry: {attempts: 0}
          other:
            handler: log
            topics: x, y
        """
    )
    found = [(line, p.partition(":")[0]) for line, p in lined(text, check_handlers=True)]
    assert found == [
        (6, "subscribers.hook.settings.timeout"),
        (7, "subscribers.hook.settings.url"),
        (8, "subscribers.hook.topics[0]"),
        (9, "subscribers.hook.retry.attempts"),
        (12, "subscribers.other.topics"),
    ]
