"""Helpers for baking and running projects: the answer matrix, the supported Pythons, one way to run a command."""

from __future__ import annotations

import ast
import itertools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
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


def _noxfile_list(name: str) -> list[str]:
    """A list assigned in noxfile.py (read, not imported: nox is not installed here, and importing runs it)."""
    module = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    assignments = {ast.unparse(node.targets[0]): node.value for node in module.body if isinstance(node, ast.Assign)}
    return ast.literal_eval(assignments[name])


# The Pythons the baked project supports, oldest first; noxfile.py keeps the list and runs these tests on each.
PYTHONS = _noxfile_list("PYTHONS")
# Newer Pythons the baked CI tries, allowed to fail (not in the classifiers).
EXPERIMENTAL_PYTHONS = _noxfile_list("EXPERIMENTAL_PYTHONS")

# uv, from requirements-test.txt (beside this interpreter), else from PATH.
UV = shutil.which("uv", path=sysconfig.get_path("scripts")) or "uv"


def combination_id(answers: dict[str, str]) -> str:
    """`uvloop-postgresql`: the values in cookiecutter.json order."""
    return "-".join(answers.values())


def bake(cookies, answers: dict[str, str]) -> Path:  # type: ignore[no-untyped-def]
    """Bake with pytest-cookies (its `cookies` or `cookies_session`), fail on any error, return the project."""
    result = cookies.bake(extra_context=answers)
    assert result.exception is None, result.exception
    return Path(result.project_path)


def run(
    folder: Path,
    *command: str | Path,
    env: dict[str, str | None] | None = None,
    clean_env: bool = False,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `folder` and return what it did; with `check`, fail the test with its output unless it exits 0.

    It inherits this environment, with `folder`/src on PYTHONPATH when that exists (a baked project's package is
    importable), or with `clean_env` only PATH and HOME; `env` is laid on top, a None value unsetting the variable.
    """
    base = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())} if clean_env else dict(os.environ)
    if not clean_env and (folder / "src").is_dir():
        base["PYTHONPATH"] = str(folder / "src")
    environment = {key: value for key, value in {**base, **(env or {})}.items() if value is not None}
    arguments = [str(part) for part in command]
    done = subprocess.run(
        arguments, cwd=folder, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        output = done.stdout + done.stderr
        pytest.fail(f"{' '.join(arguments)} exited {done.returncode} in {folder}:\n{output}", pytrace=False)
    return done


def run_suite(project: Path, *args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the baked project's own suite from this interpreter, CI unset unless `env` sets it; the caller checks."""
    pytest_command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    return run(project, *pytest_command, env={"CI": None, **(env or {})}, check=False)


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
