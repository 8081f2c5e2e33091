"""The cluster suite's own 3-node RabbitMQ cluster, and the figures its faults produce.

One cluster serves the whole module that asks for it (booted and joined in
about 15 s, stopped and deleted after its last test), so the nodes do not
idle while the rest of the suite runs. It never touches the shared broker.
Skip the suite locally with ``-m "not cluster"``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_support import Figures

from tests.support.cluster import RabbitCluster

#: Figures of every fault run in this session, printed in the terminal summary.
FIGURES: list[Figures] = []


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    with RabbitCluster(3) as running:  # unique node names and ports
        yield running


@pytest.fixture
def given_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients try the nodes in the order a test lists them, so it knows who is where."""
    monkeypatch.setenv("HUBBUB_URL_ORDER", "given")


@pytest.fixture
def report() -> Iterator[list[Figures]]:
    """Collects a test's figures: printed after the run even without ``-s``."""
    mine: list[Figures] = []
    yield mine
    FIGURES.extend(mine)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("cluster faults: events counted end to end")
        for figures in FIGURES:
            terminalreporter.write_line(figures.line())
