"""What the wheel ships, and what the pytest plugin costs an app's every test run.

The wheel holds the library alone: ``hubbub.testing`` with what users test
with, not hubbub's own test tooling (tests/support) nor the example app.
The plugin is imported by every pytest run of every app with hubbub
installed (the ``pytest11`` entry point), so importing it, and running a
test that uses none of its fixtures, must not load pika, prometheus_client,
kombu, pydantic or the hubs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: What the users' test helpers need: they must ship.
SHIPPED = {
    "hubbub/__init__.py",
    "hubbub/py.typed",
    "hubbub/testing/__init__.py",
    "hubbub/testing/pytest.py",
    "hubbub/testing/memory.py",
    "hubbub/testing/live.py",
    "hubbub/testing/clock.py",
    "hubbub/testing/records.py",
    "hubbub/testing/vhosts.py",
}
#: hubbub's own test tooling, moved to tests/support: none of it may ship.
MOVED = ("node", "cluster", "process", "certificates", "recording")
#: Loaded by the hubs, never by importing the plugin or by a test without its fixtures.
HEAVY = (
    "pika",
    "prometheus_client",
    "kombu",
    "pydantic",
    "hubbub.hub",
    "hubbub.testing.memory",
    "hubbub.testing.live",
)


def _not_sources(directory: str, names: list[str]) -> set[str]:
    """What a copy of the repository leaves out: venv, VCS, caches, old builds."""
    return {
        n
        for n in names
        if n.startswith(".") or n in ("build", "dist", "__pycache__") or n.endswith(".egg-info")
    }


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel ``pip wheel`` builds from this working tree (once per session).

    Built from a copy: an in-tree build would leave build/ behind, whose stale
    files (a module since moved) would go into the next wheel.
    """
    source = tmp_path_factory.mktemp("source") / "hubbub"
    shutil.copytree(REPO, source, ignore=_not_sources, symlinks=True)
    out = tmp_path_factory.mktemp("wheel")
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]  # setuptools of the dev venv
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), *offline, "--quiet", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    [path] = out.glob("hubbub-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_ships_the_library_alone(wheel):
    names = set(wheel.namelist())
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"hubbub"}, tops
    assert not [n for n in names if n.startswith(("example_app/", "tests/", "bench/"))]


def test_the_wheel_ships_the_users_test_helpers_and_not_hubbubs_own(wheel):
    names = set(wheel.namelist())
    assert names >= SHIPPED, SHIPPED - names
    shipped_moved = {f"hubbub/testing/{m}.py" for m in MOVED} & names
    assert not shipped_moved, f"hubbub's own test tooling ships: {sorted(shipped_moved)}"


def test_the_wheel_registers_the_pytest_plugin(wheel):
    [entry_points] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[pytest11]\nhubbub = hubbub.testing.pytest" in text


def test_the_moved_tooling_lives_in_tests_support():
    from tests.support import certificates, cluster, node, process, recording

    modules = (node, cluster, process, certificates, recording)
    assert [m.__name__.rsplit(".", 1)[-1] for m in modules] == list(MOVED)
    assert all(Path(m.__file__).parent == REPO / "tests" / "support" for m in modules)


def _fresh_python(code: str, cwd: Path) -> list[str]:
    """Run ``code`` in a new interpreter; the lines it prints."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout.splitlines()


def test_importing_the_plugin_loads_nothing_heavy(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import hubbub.testing.pytest
        print([m for m in {HEAVY!r} if m in sys.modules])
        """)
    assert _fresh_python(code, tmp_path) == ["[]"]


def test_an_apps_test_run_that_uses_no_fixture_of_hubbub_loads_nothing_heavy(tmp_path):
    """A whole pytest run, as an app's: the plugin loads by its entry point and its
    autouse fixture runs around the test, and still nothing heavy is imported."""
    (tmp_path / "test_app.py").write_text(
        textwrap.dedent(f"""
            import sys

            def test_nothing_heavy():
                assert "hubbub.testing.pytest" in sys.modules  # the plugin did load
                heavy = [m for m in {HEAVY!r} if m in sys.modules]
                assert heavy == []
            """)
    )
    code = "import pytest; raise SystemExit(pytest.main(['-q', '-p', 'no:cacheprovider']))"
    assert "1 passed" in "\n".join(_fresh_python(code, tmp_path))


def test_the_names_still_resolve_on_use(tmp_path):
    code = textwrap.dedent("""
        import hubbub, hubbub.testing
        from hubbub import Hub, publish
        from hubbub.testing import InMemoryHub, LiveHub
        print(Hub.__module__, publish.__module__, InMemoryHub.__module__, LiveHub.__module__)
        print(sorted(set(hubbub.__all__) - set(dir(hubbub))))
        """)
    assert _fresh_python(code, tmp_path) == [
        "hubbub.hub hubbub.current hubbub.testing.memory hubbub.testing.live",
        "[]",
    ]
