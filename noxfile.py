"""The template's own tests: `nox` runs them on every supported Python found here and names the ones it skipped.

The full proof (every file of tests/) runs once, on the newest Python found: `full-3.13`. The other Pythons get
the quick proof of what can differ between Pythons (`quick-3.11`: the tests marked `every_python`). CI runs
`nox -s quick-3.11 full-3.13`; with `CI` set a missing interpreter fails the run instead of being skipped.
Arguments after `--` go to pytest, e.g. `nox -R -s quick-3.11 -- tests/test_tooling.py`
(`-R` reuses the virtual environments and skips the install, for quick re-runs).

nox finds interpreters on PATH and through pyenv's *active* versions; so that
`pyenv install 3.11 3.12 3.13 3.14` is enough (no `pyenv global ...`),
the pyenv-installed versions of PYTHONS are made active for this run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

# The versions the baked project supports (its classifiers, requires-python and CI matrix); the template's tests
# read both lists (tests/baking.py), so they are kept here only.
PYTHONS = ["3.11", "3.12", "3.13", "3.14"]
# The Python benchmarks/budget.json was measured on: instructions per request differ from one Python to the next.
INSTRUCTIONS_PYTHON = "3.13"
# In the baked CI matrix but allowed to fail: its dependencies ship wheels for it, but aiohttp, asyncpg and uvloop
# do not declare it yet (no classifier) and frozenlist ships only its slow pure-Python wheel.
EXPERIMENTAL_PYTHONS = ["3.15"]

nox.options.reuse_venv = "yes"
# uv makes and fills the virtual environments in seconds where it is installed (`pip install nox[uv]`), else virtualenv.
nox.options.default_venv_backend = "uv|virtualenv"
# Never download an interpreter. A missing one is skipped with a line saying so, or under CI fails the run.
nox.options.download_python = "never"
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
nox.options.error_on_missing_interpreters = "CI" in os.environ


def activate_pyenv_versions(pythons: list[str]) -> None:
    """Set PYENV_VERSION to the newest pyenv-installed patch release of each of `pythons`, unless it is set."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    if "PYENV_VERSION" in os.environ or not (root / "versions").is_dir():
        return
    installed = [path.name for path in (root / "versions").iterdir() if (path / "bin").is_dir()]
    chosen = []
    for python in pythons:
        patches = [name for name in installed if name.startswith(f"{python}.") and name.split(".")[-1].isdigit()]
        if patches:
            chosen.append(max(patches, key=lambda name: int(name.split(".")[-1])))
    if chosen:
        os.environ["PYENV_ROOT"] = str(root)
        os.environ["PYENV_VERSION"] = ":".join(chosen)


activate_pyenv_versions(PYTHONS)
FOUND = [python for python in PYTHONS if shutil.which(f"python{python}")]
NEWEST = FOUND[-1] if FOUND else PYTHONS[-1]
# `nox`: the quick proof on every other Python (a missing one is listed as skipped), the full one on the newest.
nox.options.sessions = [f"quick-{python}" for python in PYTHONS if python != NEWEST] + [f"full-{NEWEST}"]


def pytest_in(session: nox.Session, *args: str) -> None:
    """Install the test requirements and run pytest on every core; tests go to the workers one at a time, the longest
    first (tests/conftest.py), so that the workers finish together."""
    session.install("-r", "requirements-test.txt")
    session.run("pytest", "-n", "auto", "--dist", "load", "--maxschedchunk", "1", *args, *session.posargs)


@nox.session(python=PYTHONS)
def quick(session: nox.Session) -> None:
    """What can differ between Pythons: each combination baked, linted and type-checked; the README's installs."""
    pytest_in(session, *([] if session.posargs else ["-m", "every_python"]))


@nox.session(python=PYTHONS)
def full(session: nox.Session) -> None:
    """Every test of the template: each combination's full proof, the mutation check, hooks, tooling, updates."""
    pytest_in(session)


@nox.session(python=NEWEST)
def load(session: nox.Session) -> None:
    """The baked suites (SQLite and PostgreSQL, plain and --heavy) with two busy processes per core beside them; every
    run must pass. The short form by default; `nox -s load -- --plain 10 --heavy 3` for the full count."""
    session.install("-r", "requirements-test.txt")
    session.run("python", "tests/load.py", *session.posargs)


@nox.session(python=INSTRUCTIONS_PYTHON)
def instructions(session: nox.Session) -> None:
    """The instruction-count gate, short form: the baked service's instructions per request under valgrind against the
    bare app's, every ratio within benchmarks/budget.json. `nox -s instructions -- --write` also updates results.md."""
    session.install("-r", "requirements-test.txt")
    session.run("python", "benchmarks/instructions.py", "--short", *session.posargs)
