"""The README's and docs/testing.md's Python snippets against the package: what they
import exists, and what they use from hubbub they import."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hubbub

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    "README.md",
    "docs/testing.md",
    "docs/middleware.md",
    "docs/asyncio.md",
    "docs/actions.md",
    "docs/inbox.md",
]


def snippets(doc: str) -> list[tuple[int, ast.Module]]:
    text = (REPO / doc).read_text()
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        line = text[: match.start()].count("\n") + 2
        blocks.append((line, ast.parse(match.group(1), f"{doc}:{line}")))
    return blocks


def imports(tree: ast.Module) -> dict[str, str]:
    """Each name a snippet imports from hubbub, with its module."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hubbub"):
            found.update({a.asname or a.name: node.module or "" for a in node.names})
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_what_snippets_import_from_hubbub_exists(doc):
    for line, tree in snippets(doc):
        for name, module in imports(tree).items():
            assert hasattr(importlib.import_module(module), name), f"{doc}:{line}: {name}"


@pytest.mark.parametrize("doc", DOCS)
def test_snippets_import_the_hubbub_names_they_use(doc):
    public = set(hubbub.__all__)
    for line, tree in snippets(doc):
        imported = set(imports(tree))
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in public}
        assert used <= imported, f"{doc}:{line} uses {sorted(used - imported)} without importing"


def test_the_package_exports_what_the_docs_publish_with():
    for name in ("Hub", "OutgoingEvent", "publish", "publish_many", "HubbubError"):
        assert name in hubbub.__all__


def test_the_readme_documents_hub_worker_and_where_handlers_are_imported_from():
    readme = (REPO / "README.md").read_text()
    assert "hub.worker(" in readme and "worker.stop()" in readme and "worker.run" in readme
    assert "current directory" in readme and "PYTHONPATH" in readme


def test_handlers_are_imported_from_the_current_directory_or_pythonpath(tmp_path):
    """What the README says about where `package.module:function` is looked up."""
    app = tmp_path / "app"
    (app / "shopdoc").mkdir(parents=True)
    (app / "shopdoc" / "__init__.py").write_text("")
    (app / "shopdoc" / "handlers.py").write_text("def ship(event):\n    pass\n")
    topology = app / "topology.yaml"
    topology.write_text(
        "hub: events\nsubscribers:\n  ship:\n"
        "    handler: shopdoc.handlers:ship\n    topics: [order.placed]\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hubbub_cli = Path(sys.executable).with_name("hubbub")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def validate(cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        argv = [str(hubbub_cli), "topology", "validate", "--file", str(topology)]
        return subprocess.run(
            argv, cwd=cwd, env={**env, **extra}, capture_output=True, text=True, timeout=60
        )

    assert validate(app).returncode == 0
    lost = validate(elsewhere)
    assert lost.returncode != 0 and "cannot import handler 'shopdoc.handlers:ship'" in lost.stderr
    assert validate(elsewhere, PYTHONPATH=str(app)).returncode == 0
