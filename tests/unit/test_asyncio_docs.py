"""docs/asyncio.md and the README's asyncio section against the code they show:
the FastAPI app, the handler and the topology are copies of example_app's
files (so they cannot drift), and the testing example runs."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from example_app import async_actions, web

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "asyncio.md"
WEB = Path(web.__file__)


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def block_after(heading: str, language: str, nth: int = 0) -> str:
    """The ``nth`` ``language`` block of the section that starts with ``heading``."""
    section = DOC.read_text().split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]
    return blocks(section, language)[nth]


def without_docstring(source: str) -> str:
    """A module's text after its docstring."""
    return source.split('"""', 2)[2].lstrip("\n")


def test_the_fastapi_example_is_example_app_web_as_it_is():
    assert block_after("FastAPI", "python") == without_docstring(WEB.read_text())


def test_the_handler_shown_is_the_example_apps_with_the_imports_it_needs():
    shown = block_after("FastAPI", "python", 1)
    source = inspect.getsource(async_actions.send_welcome_email)
    assert shown.endswith(source)
    module = Path(async_actions.__file__).read_text()
    for line in filter(None, shown.removesuffix(source).splitlines()):
        assert line in module.splitlines(), line


def test_the_topology_shown_is_the_start_of_example_app_web_yaml():
    shown = block_after("`hubbub consume` with async handlers", "yaml")
    assert "concurrency: 200" in shown
    assert shown in WEB.with_name("web.yaml").read_text()


def test_the_readmes_fastapi_snippet_is_lines_of_the_example_in_order():
    (snippet,) = [b for b in blocks((REPO / "README.md").read_text(), "python") if "FastAPI" in b]
    lines = iter(WEB.read_text().splitlines())
    for wanted in filter(str.strip, snippet.splitlines()):
        assert any(line == wanted for line in lines), f"not in {WEB.name} (in order): {wanted}"


@pytest.fixture
def hubbub_topology():
    return WEB.with_name("web.yaml")


def test_the_documented_tests_pass(memory_hub, monkeypatch):
    monkeypatch.setenv("EXAMPLE_MAIL_LATENCY", "0")
    async_actions.clear()
    namespace: dict[str, Any] = {}
    exec(compile(block_after("Testing", "python"), str(DOC), "exec"), namespace)
    namespace["test_a_signup_is_welcomed"](memory_hub)
    asyncio.run(namespace["test_a_signup_is_welcomed_on_the_tests_loop"](memory_hub))
    assert len(async_actions.MAILBOX["emails"]) == 2
    async_actions.clear()


def test_the_speed_section_points_at_the_benchmarks():
    assert "bench/README.md" in DOC.read_text().split("\n## Speed", 1)[1]


def test_the_documented_middleware_times_sync_and_async_handlers():
    from hubbub.testing import InMemoryHub

    timed: list[str] = []
    namespace: dict[str, Any] = {"record": lambda topic, seconds: timed.append(topic)}
    exec(compile(block_after("Async handlers", "python", 1), str(DOC), "exec"), namespace)
    hub = InMemoryHub("shop", middleware=[namespace["Timing"]()])

    async def ahandler(event):
        await asyncio.sleep(0)

    hub.subscriber("async", topics=["order.placed"])(ahandler)
    hub.subscriber("sync", topics=["order.paid"])(lambda event: None)
    with hub:
        hub.publish("order.placed", {})
        hub.publish("order.paid", {})
        hub.run_until_idle()
    assert sorted(timed) == ["order.paid", "order.placed"]
    assert [a.outcome for a in hub.attempts()] == ["ack", "ack"]
