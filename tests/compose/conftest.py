"""The compose suite runs only under ``make compose-test`` (scripts/compose-test).

That script starts a Docker engine of its own and builds the stand-in images;
without it (no DOCKER_HOST) these tests are deselected with one line saying
so, whatever ``-m`` expression selected them, so ``pytest -m 'not cluster'``
never fails for want of Docker.
"""

from __future__ import annotations

import os

import pytest
from compose_support import FIGURES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("DOCKER_HOST"):
        return
    skipped = [item for item in items if item.get_closest_marker("compose")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if not item.get_closest_marker("compose")]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("compose figures (docs/operations.md)")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
