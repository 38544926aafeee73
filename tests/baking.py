"""Helpers for baking and running projects: the answer matrix, commands in a baked project."""

from __future__ import annotations

import ast
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
CHOICES = {
    key: value
    for key, value in json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8")).items()
    if isinstance(value, list) and not key.startswith("_")
}
COMBINATIONS = [dict(zip(CHOICES, values, strict=True)) for values in itertools.product(*CHOICES.values())]


def combination_id(answers: dict[str, str]) -> str:
    """`uvloop-postgresql`: the values in cookiecutter.json order."""
    return "-".join(answers.values())


def bake(cookies, answers: dict[str, str]) -> Path:  # type: ignore[no-untyped-def]
    """Bake with pytest-cookies (its `cookies` or `cookies_session`), fail on any error, return the project."""
    result = cookies.bake(extra_context=answers)
    assert result.exception is None, result.exception
    return Path(result.project_path)


def run(project: Path, *command: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run a command in a baked project with its src/ importable; fail the test with its output if it fails."""
    environment = {**os.environ, "PYTHONPATH": str(project / "src"), **(env or {})}
    done = subprocess.run(
        command, cwd=project, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode} in {project}:\n{output}", pytrace=False)
    return output


def run_suite(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the baked project's own suite (from this interpreter, CI unset unless `env` sets it)."""
    inherited = {key: value for key, value in os.environ.items() if key != "CI"}
    environment = {**inherited, "PYTHONPATH": str(project / "src"), **(env or {})}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    return subprocess.run(command, cwd=project, env=environment, capture_output=True, text=True, timeout=600)


def package_of(project: Path) -> str:
    """The import name of a baked project."""
    [package] = [path.name for path in (project / "src").iterdir() if path.is_dir()]
    return package


def third_party_imports(folder: Path, own: set[str]) -> set[str]:
    """Top-level names imported by the .py files under `folder`, minus the standard library and `own`."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - own - {"__future__"}


def distribution_names(requirements: list[str]) -> set[str]:
    """Import-style names of requirement strings (`pytest-mock` -> `pytest_mock`)."""
    return {Requirement(line).name.lower().replace("-", "_") for line in requirements}
