"""The README's make targets that need a broker run the shared broker check first, and
``make test`` does all of the machine's set-up itself (scripts/test-setup), so CI runs
nothing a user's ``make test`` skips (a fresh machine's broker may lack the management
API, and the machine Chromium)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = "scripts/broker-ready"
SETUP = "scripts/test-setup"


def recipe(target: str) -> list[str]:
    """The commands ``make TARGET`` would run (``make -n``), install steps left out;
    ``target`` may carry variables (``test-rabbit4 RABBIT4_TESTS=...``)."""
    done = subprocess.run(
        ["make", "-n", *target.split()], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [line for line in done.stdout.splitlines() if "pip" not in line and line.strip()]


@pytest.mark.parametrize("target", ["test", "integration", "fault", "cluster", "browser"])
def test_broker_targets_run_the_broker_check_before_pytest(target):
    commands = recipe(target)
    pytest_at = next(i for i, c in enumerate(commands) if " -m pytest" in c)
    assert {CHECK, SETUP} & set(commands[:pytest_at]), commands


@pytest.mark.parametrize("target", ["test", "browser"])
def test_make_test_does_the_whole_set_up_before_pytest(target):
    commands = recipe(target)
    pytest_at = next(i for i, c in enumerate(commands) if " -m pytest" in c)
    assert SETUP in commands[:pytest_at], commands
    script = (REPO / SETUP).read_text()
    assert "apt-get install" in script and "chromium-driver" in script
    assert script.rstrip().endswith(CHECK)


def test_unit_needs_no_broker():
    assert CHECK not in recipe("unit")


def test_ci_does_no_set_up_of_its_own_before_make_test():
    lines = [line.split("#")[0].strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    before = lines[: lines.index("make test")]
    setup_words = ("rabbitmq-plugins", "curl", "apt-get", "rabbitmq-server", CHECK, SETUP)
    assert not [line for line in before if any(word in line for word in setup_words)]


def test_the_rabbit4_target_points_the_suites_at_its_node_and_always_stops_it():
    command = " ".join(recipe("test-rabbit4"))  # one shell: the trap covers pytest
    trap, start, env = (command.index(s) for s in ("trap", "rabbit4 start", "rabbit4 env"))
    assert trap < start < env < command.index(" -m pytest")
    assert "scripts/rabbit4 stop" in command[trap:start]
    assert "tests/integration tests/contract" in command


def ci_lines() -> list[str]:
    return [line.split("#")[0].strip() for line in (REPO / ".ci/run").read_text().splitlines()]


def beside_line(lines: list[str]) -> tuple[int, str]:
    """Where .ci/run starts what runs beside make test, and that command (continued lines
    joined)."""
    [at] = [i for i, line in enumerate(lines) if line.startswith("setsid ")]
    command, following = lines[at], iter(lines[at + 1 :])
    while command.endswith("\\"):
        command = command[:-1] + " " + next(following)
    return at, command


def rabbit4_arguments(command: str) -> str:
    """The make arguments of the 4.0 matrix in the background command."""
    words = command[command.index("make test-rabbit4") :].split("&&")[0].split()[1:]
    return " ".join(w for w in words if not w.startswith((">", "2>", "&")))


def test_ci_runs_the_rabbit4_matrix_then_compose_beside_make_test_and_waits_for_them():
    lines = ci_lines()
    text = (REPO / ".ci/run").read_text()
    trap = next(i for i, line in enumerate(lines) if line.startswith("trap "))
    stop = text[text.index("stop_beside() {") : text.index("\ntrap ")]
    assert "scripts/rabbit4 stop" in stop and 'kill -- "-$beside"' in stop
    beside, command = beside_line(lines)
    # The 4.0 matrix first, compose only if it passed, both in their own process group.
    assert command.index("make test-rabbit4") < command.index("&& make compose-test")
    waited = next(i for i, line in enumerate(lines) if line.startswith('wait "$beside"'))
    assert lines.index("make install") < trap < beside < lines.index("make test") < waited
    assert not [line for line in lines if line.startswith("make compose-test")]  # not twice


def test_ci_runs_both_suites_on_rabbitmq_4_and_the_contract_suite_once():
    """CI's test-rabbit4 leaves out tests/contract only because make compose-test runs it
    on the same 4.0.5 (the testcontainers test, which CI does not deselect)."""
    lines = ci_lines()
    _, beside = beside_line(lines)
    command = " ".join(recipe(rabbit4_arguments(beside)))
    assert "tests/integration" in command
    assert "not same_on_every_version" in command
    if "tests/contract" in command:
        return
    compose = beside[beside.index("make compose-test") :]
    assert "test_testcontainers" not in compose  # nothing of it deselected
    test = (REPO / "tests/compose/test_testcontainers.py").read_text()
    assert '"tests/contract"' in test and '"integration"' in test  # its broker half
    standin = (REPO / "tests/compose/images/rabbitmq/Dockerfile").read_text()
    assert "ARG BASE=hubbub-standin/debian:trixie" in standin  # trixie: RabbitMQ 4.0.5
    assert "SUITE=trixie" in (REPO / "scripts/compose-test").read_text()
    assert "trixie" in (REPO / "scripts/rabbit4").read_text()
