"""A baked project installs from its own pyproject alone, as its README says, and passes its suite there.

The matrix runs baked suites from this environment; here each database answer
gets a fresh virtual environment, so a dependency the pyproject forgets cannot
hide behind one the template's tests happen to have installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .baking import CHOICES, bake

pytestmark = pytest.mark.slow

# One bake per database; the event loops alternate so both are installed somewhere.
CASES = [
    {"database": database, "event_loop": CHOICES["event_loop"][index % len(CHOICES["event_loop"])]}
    for index, database in enumerate(CHOICES["database"])
]


def sh(folder: Path, *command: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a command with a clean environment apart from `env`; fail the test with its output if it fails."""
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **(env or {})}
    done = subprocess.run(
        [str(part) for part in command],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}{done.stderr}", pytrace=False
        )
    return done.stdout


@pytest.mark.parametrize("answers", CASES, ids=lambda answers: "-".join(answers.values()))
def test_readme_install_then_suite_in_a_fresh_venv(cookies, answers: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = bake(cookies, answers)
    python = tmp_path / "venv" / "bin" / "python"

    sh(project, sys.executable, "-m", "venv", tmp_path / "venv")
    sh(project, python, "-m", "pip", "install", "-q", "-e", ".[dev]")
    output = sh(project, python, "-m", "pytest", "-q", "-p", "no:cacheprovider", env={"CI": "true"})

    assert " passed" in output
    assert "skipped" not in output
