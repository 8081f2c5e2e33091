"""Shared fixtures: a real broker for integration tests, unique names, clean-up."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from hubbub.consumers.worker import Worker
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader
from hubbub.topology.model import Topology

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Child processes import from the repository root as this one does.

    ``hubbub consume`` started by a test imports handlers of example_app and
    tests.support, which are not installed (the wheel ships hubbub alone);
    pytest's ``pythonpath`` puts the root on this process's sys.path, this puts it
    on the children's ``PYTHONPATH``.
    """
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


#: The marker of tests ``make test-rabbit4`` leaves out (see pyproject.toml's markers).
SAME_ON_EVERY_VERSION = "same_on_every_version"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every ``same_on_every_version`` mark says why: leaving a test out of the 4.0
    matrix is a claim about the test, so the claim is written beside it."""
    unexplained = [
        item.nodeid
        for item in items
        for mark in item.iter_markers(SAME_ON_EVERY_VERSION)
        if not (mark.kwargs.get("reason") or (mark.args and mark.args[0]))
    ]
    if unexplained:
        raise pytest.UsageError(
            f"@pytest.mark.{SAME_ON_EVERY_VERSION} needs a reason "
            f"(reason=...): {', '.join(unexplained)}"
        )


@pytest.fixture(scope="session")
def broker_url(hubbub_broker_url: str) -> str:
    """A real broker; the test fails (never skips) when there is none.

    The plugin's ``hubbub_broker_url``, so one session never starts two containers.
    """
    return hubbub_broker_url


@pytest.fixture(autouse=True)
def _broker_url_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Integration tests talk to the test broker whatever HUBBUB_URL says."""
    if "broker_url" in request.fixturenames:
        monkeypatch.setenv("HUBBUB_URL", request.getfixturevalue("broker_url"))


@pytest.fixture
def hub_name(request: pytest.FixtureRequest) -> str:
    """A hub name unique to this test (so tests never share queues)."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40]
    return unique_name(f"t-{base}")


@pytest.fixture
def declare(broker_url: str) -> Iterator[Callable[..., Topology]]:
    """Validate and apply a topology (a mapping, or YAML text); deleted after the test."""
    declared: list[Topology] = []

    def _declare(spec: Mapping[str, Any] | str, **_: Any) -> Topology:
        topology = loader.loads(spec) if isinstance(spec, str) else loader.from_mapping(spec)
        declared.append(topology)
        apply(topology, [broker_url])
        return topology

    yield _declare
    for topology in declared:
        delete_hub(broker_url, topology)


@pytest.fixture
def run_worker(broker_url: str) -> Iterator[Callable[..., Worker]]:
    """Start a Worker in a thread, ready to consume; stopped after the test."""
    running: list[tuple[Worker, threading.Thread]] = []

    def _run(topology: Topology, handlers: Mapping[str, Any], **options: Any) -> Worker:
        worker = Worker(topology, handlers, url=broker_url, **options)
        errors: list[BaseException] = []
        thread = threading.Thread(target=lambda: _capture(worker, errors), daemon=True)
        thread.start()
        if not worker.consuming.wait(15):
            raise AssertionError(f"worker did not start consuming: {errors}")
        running.append((worker, thread))
        return worker

    yield _run
    for worker, thread in running:
        worker.stop()
        thread.join(30)


def _capture(worker: Worker, errors: list[BaseException]) -> None:
    try:
        worker.run()
    except BaseException as exc:
        errors.append(exc)


#: The PostgreSQL the inbox tests use (the machine's, trust auth); HUBBUB_TEST_POSTGRES overrides.
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """A real PostgreSQL; the test fails (never skips) when there is none."""
    import psycopg

    dsn = os.environ.get("HUBBUB_TEST_POSTGRES", POSTGRES_DSN)
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.fail(f"no PostgreSQL at {dsn} ({exc}): scripts/test-setup starts the machine's")
    return dsn


@pytest.fixture
def inbox_table(postgres_dsn: str) -> Iterator[str]:
    """A table name unique to this test, dropped after it."""
    import psycopg

    table = unique_name("inbox").replace("-", "_").replace(".", "_")
    yield table
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')
