"""The template's own tests on every supported Python: `nox` (all), `nox -s tests-3.13` (one).

Arguments after `--` go to pytest, e.g. `nox -R -s tests-3.11 -- tests/test_tooling.py`
(`-R` reuses the virtual environments and skips the install, for quick re-runs).

nox finds interpreters on PATH and through pyenv's *active* versions; so that
`pyenv install 3.11 3.12 3.13` is enough (no `pyenv global 3.11 3.12 3.13`),
the pyenv-installed versions of PYTHONS are made active for this run.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

# The versions the baked project supports (its requires-python and CI matrix); the template's tests
# read this list (tests/baking.py), so it is kept here only.
PYTHONS = ["3.11", "3.12", "3.13"]

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"
# Never download an interpreter: a missing one is an error to fix, not a silent skip.
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = True


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


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Bake every combination of answers and run the checks, on one Python.

    The mutation check (tests/test_mutations.py, about 12 minutes on 2 cores) proves the baked suite's
    tests, which do not change with the interpreter: it runs on the newest Python only.
    """
    session.install("-r", "requirements-test.txt")
    newest = session.python == PYTHONS[-1]
    skip = [] if newest or session.posargs else ["--ignore", "tests/test_mutations.py"]
    session.run("pytest", "-n", "auto", *skip, *session.posargs)
