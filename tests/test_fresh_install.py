"""A baked project installs from its own pyproject alone, as its README says, and passes its suite there.

The matrix runs baked suites from this environment; here each database answer
gets a fresh virtual environment, so a dependency the pyproject forgets cannot
hide behind one the template's tests happen to have installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .baking import CHOICES, bake, run

pytestmark = pytest.mark.slow

# One bake per database; the event loops alternate so both are installed somewhere.
CASES = [
    {"database": database, "event_loop": CHOICES["event_loop"][index % len(CHOICES["event_loop"])]}
    for index, database in enumerate(CHOICES["database"])
]


@pytest.mark.parametrize("answers", CASES, ids=lambda answers: "-".join(answers.values()))
def test_readme_install_then_suite_in_a_fresh_venv(cookies, answers: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = bake(cookies, answers)
    python = tmp_path / "venv" / "bin" / "python"

    # Only PATH and HOME from here on: nothing of this environment (PYTHONPATH, a virtualenv) leaks in.
    run(project, sys.executable, "-m", "venv", tmp_path / "venv", clean_env=True)
    run(project, python, "-m", "pip", "install", "-q", "-e", ".[dev]", clean_env=True, timeout=900)
    done = run(project, python, "-m", "pytest", "-q", "-p", "no:cacheprovider", clean_env=True, env={"CI": "true"})

    assert " passed" in done.stdout
    assert "skipped" not in done.stdout
