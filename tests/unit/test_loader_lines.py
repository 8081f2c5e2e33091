"""Every problem about a place in the topology file names its line."""

from __future__ import annotations

import textwrap

import pytest

from hubbub.errors import TopologyError
from hubbub.topology import lines, loader

FILE = textwrap.dedent(
    """\
    # line 1
    hub: events
    subscribers:
      welcome-email:
        handler: example_app.actions:send_welcome_email
        topics:
          - user.signed_up
          - "user.*x"
        retry:
          attempts: 0
          backoff: 2s
      notify-sales:
        handler: hubbub.actions:webhook
        topics: [billing.#]
        settings:
          url: 12
          threshold: {deep: 1}
      audit:
        handler: json:dumps
    """
)


def problems(text: str = FILE, **kwargs) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        loader.loads(text, source="topology.yaml", **kwargs)
    return info.value


def test_several_problems_each_name_their_line():
    error = problems()
    found = dict(zip(error.problems, error.lines, strict=True))
    where = {p.partition(":")[0]: line for p, line in found.items()}
    assert where == {
        "subscribers.welcome-email.topics[1]": 8,
        "subscribers.welcome-email.retry.attempts": 10,
        "subscribers.audit.topics": 18,  # missing: the subscriber's line
    }
    text = str(error)
    assert "  - topology.yaml:10: subscribers.welcome-email.retry.attempts: must be at least 1" in (
        text.splitlines()
    )


def test_one_problem_reads_file_line_path_message():
    text = FILE.replace('- "user.*x"', "- user.x").replace(
        "  audit:\n    handler: json:dumps\n", ""
    )
    assert str(problems(text)) == (
        "topology.yaml:10: subscribers.welcome-email.retry.attempts: must be at least 1"
    )


@pytest.mark.parametrize(
    ("problem", "line"),
    [
        ("hub: bad", 2),
        ("subscribers: bad", 3),
        ("subscribers.welcome-email: bad", 4),
        ("subscribers.welcome-email.topics[0]: bad", 7),
        ("subscribers.welcome-email.topics[1]: bad", 8),
        ("subscribers.welcome-email.topics[7]: bad", 6),  # no such item: the list
        ("subscribers.welcome-email.retry.backoff: bad", 11),
        ("subscribers.notify-sales.topics[0]: bad", 14),  # a flow list: its line
        ("subscribers.notify-sales.settings.url: must be a URL", 16),
        ("subscribers.notify-sales.settings.threshold.deep: bad", 17),
        ("subscribers.notify-sales.settings.template: required", 15),  # missing key
        ("subscribers.audit.settings.url: required", 18),  # no settings at all
        ("subscribers.notify-sales.handler: cannot import", 13),
        ("subscribers.nobody.topics: bad", 3),  # no such subscriber: subscribers
        ("the file must be a mapping", None),
        ("subscriber 'a' is defined twice", None),
        ("replicas: bad", None),  # a top-level key that is not there: no place
    ],
)
def test_a_dotted_path_maps_to_its_line(problem, line):
    assert lines.line_of(lines.compose(FILE), problem) == line


def test_names_with_dots_and_shortened_names_are_found():
    long = "n" * 70
    text = f"hub: h\nsubscribers:\n  a.b:\n    topics: [x]\n  {long}:\n    topics: [y]\n"
    root = lines.compose(text)
    assert lines.line_of(root, "subscribers.a.b.name: bad") == 3
    assert lines.line_of(root, f"subscribers.{long[:57]}....topics: bad") == 6


def test_keys_merged_from_an_anchor_are_found():
    text = "defaults: &d\n  retry:\n    attempts: 0\nhub: h\nsubscribers:\n  a:\n    <<: *d\n"
    assert lines.line_of(lines.compose(text), "subscribers.a.retry.attempts: bad") == 3


def test_handler_and_settings_problems_found_later_get_lines_too():
    text = "hub: h\nsubscribers:\n  a:\n    handler: no_such_module_xyz:f\n    topics: [x]\n"
    error = problems(text, check_handlers=True)
    assert error.lines == [4]
    assert str(error).startswith("topology.yaml:4: subscribers.a.handler: cannot import")
    later = TopologyError(["subscribers.a.settings.url: required: add it"], source="t.yaml")
    assert str(loader.with_lines(later, text)) == (
        "t.yaml:3: subscribers.a.settings.url: required: add it"
    )


def test_a_yaml_syntax_error_keeps_its_line():
    error = problems("hub: h\nsubscribers:\n  a: [x\n  b: y\n")
    assert error.lines == [4]
    assert str(error).startswith("topology.yaml:4: column ")
    assert "not valid YAML" in str(error)


def test_a_key_given_twice_names_the_second_line():
    error = problems("hub: h\nsubscribers:\n  a: {handler: 'm:f', topics: [x]}\nhub: g\n")
    assert str(error) == "topology.yaml:4: 'hub' is defined twice"


def test_a_valid_file_loads_and_a_file_that_does_not_compose_gives_no_lines():
    assert lines.compose("a: [") is None
    assert lines.line_of(None, "hub: bad") is None
    text = FILE.replace("attempts: 0", "attempts: 1").replace('"user.*x"', "user.x")
    assert loader.loads(text.replace("  audit:\n    handler: json:dumps\n", "")).hub == "events"


def test_settings_problems_come_with_the_other_problems_each_with_its_line():
    text = textwrap.dedent(
        """\
        hub: events
        subscribers:
          reminder:
            handler: log
            topics: [user.active]
            delay: 5 days
          crm:
            handler: webhook
            topics: [billing.#]
            settings:
              URL: https://crm.example/hook
        """
    )
    error = problems(text, check_handlers=True)
    where = [
        (line, p.partition(":")[0]) for line, p in zip(error.lines, error.problems, strict=True)
    ]
    assert where == [
        (6, "subscribers.reminder.delay"),
        (10, "subscribers.crm.settings.url"),
        (11, "subscribers.crm.settings.URL"),
    ]
