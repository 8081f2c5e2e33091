"""``hubbub consume --middleware/--codecs``: references resolved, bad ones refused in one line."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hubbub.cli.consume import codecs_from, middleware_from
from hubbub.cli.main import cli
from hubbub.codecs import Codecs
from hubbub.errors import ConfigurationError, HandlerImportError

APP = """
from hubbub import Codecs, Middleware


class Timing(Middleware):
    def consume(self, event, call_next):
        return call_next(event)


class Needs(Middleware):
    def __init__(self, dsn):
        self.dsn = dsn


async def notify(event):
    return None


timing = Timing()
codecs = Codecs()
not_one = object()
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"mw_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_an_instance_and_a_class_without_arguments_are_middlewares(app: str) -> None:
    instance = middleware_from(f"{app}:timing")
    assert type(instance).__name__ == "Timing"
    built = middleware_from(f"{app}:Timing")
    assert type(built).__name__ == "Timing" and built is not instance


@pytest.mark.parametrize(
    ("ref", "error", "says"),
    [
        ("{app}:Needs", ConfigurationError, "needs arguments"),
        ("{app}:not_one", ConfigurationError, "is not a middleware"),
        ("{app}:missing", HandlerImportError, "cannot import middleware"),
        ("no_colon", HandlerImportError, "is not package.module:name"),
    ],
)
def test_what_is_not_a_middleware_is_refused_saying_why(app, ref, error, says) -> None:
    with pytest.raises(error, match=re.escape(says)):
        middleware_from(ref.format(app=app))


def test_codecs_must_be_a_codecs(app: str) -> None:
    assert isinstance(codecs_from(f"{app}:codecs"), Codecs)
    with pytest.raises(ConfigurationError, match=r"not a hubbub\.Codecs"):
        codecs_from(f"{app}:timing")


def test_consume_with_a_bad_middleware_stops_before_connecting_in_one_line(
    app: str, tmp_path: Path
) -> None:
    topology = tmp_path / "topology.yaml"
    spec = {"hub": "h", "subscribers": {"s": {"handler": "json:dumps", "topics": ["t"]}}}
    topology.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        cli,
        ["consume", "-f", str(topology), "--url", "amqp://127.0.0.1:1/", "--middleware",
         f"{app}:Needs"],
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "needs arguments" in lines[0], result.output
    assert "Traceback" not in result.output


def test_consume_refuses_a_consume_only_middleware_around_an_async_handler_in_one_line(
    app: str, tmp_path: Path
) -> None:
    topology = tmp_path / "topology.yaml"
    spec = {"hub": "h", "subscribers": {"s": {"handler": f"{app}:notify", "topics": ["t"]}}}
    topology.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        cli,
        ["consume", "-f", str(topology), "--url", "amqp://127.0.0.1:1/", "--middleware",
         f"{app}:timing"],
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "subscriber s: middleware Timing has a consume hook but no aconsume" in lines[0]
    assert "Traceback" not in result.output
