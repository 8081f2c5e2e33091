"""The README's make targets that need a broker run the shared broker check first,
and CI runs the same script (a fresh machine's broker may lack the management API)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = "scripts/broker-ready"


def recipe(target: str) -> list[str]:
    """The commands ``make TARGET`` would run (``make -n``), install steps left out."""
    done = subprocess.run(
        ["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [line for line in done.stdout.splitlines() if "pip" not in line and line.strip()]


@pytest.mark.parametrize("target", ["test", "integration", "fault", "cluster"])
def test_broker_targets_run_the_broker_check_before_pytest(target):
    commands = recipe(target)
    pytest_at = next(i for i, c in enumerate(commands) if " -m pytest" in c)
    assert CHECK in commands[:pytest_at], commands


def test_unit_needs_no_broker():
    assert CHECK not in recipe("unit")


def test_ci_runs_the_same_check_before_make_test():
    lines = [line.split("#")[0].strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert lines.index(CHECK) < lines.index("make test")
    assert not [line for line in lines if "rabbitmq-plugins" in line or "curl" in line]


def test_the_rabbit4_target_points_the_suites_at_its_node_and_always_stops_it():
    command = " ".join(recipe("test-rabbit4"))  # one shell: the trap covers pytest
    trap, start, env = (command.index(s) for s in ("trap", "rabbit4 start", "rabbit4 env"))
    assert trap < start < env < command.index(" -m pytest")
    assert "scripts/rabbit4 stop" in command[trap:start]
    assert "tests/integration tests/contract" in command


def test_ci_runs_the_rabbit4_matrix_after_make_test_with_a_trap():
    lines = [line.split("#")[0].strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    trap = next(
        i for i, line in enumerate(lines) if line.startswith("trap ") and "rabbit4 stop" in line
    )
    assert lines.index("make test") < trap < lines.index("make test-rabbit4")
