"""The template's own test runner: what `.ci/run` and the README say it runs, and how it treats a missing Python."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from .baking import PYTHONS, ROOT, run

MISSING = "3.99"  # a Python no machine has


def nox_with_missing_python(tmp_path: Path, *, ci: bool) -> tuple[int, str]:
    """Run `nox -s quick-3.99` on a copy of noxfile.py that lists 3.99 too; its exit code and output."""
    source = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    noxfile = tmp_path / "noxfile.py"
    edited = source.replace(f"PYTHONS = {json.dumps(PYTHONS)}", f"PYTHONS = {json.dumps([*PYTHONS, MISSING])}")
    assert edited != source, "PYTHONS is no longer a plain list in noxfile.py"
    noxfile.write_text(edited, encoding="utf-8")
    env = {"CI": "true" if ci else None}
    done = run(tmp_path, sys.executable, "-m", "nox", "-f", noxfile, "-s", f"quick-{MISSING}", env=env, check=False)
    return done.returncode, done.stdout + done.stderr


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [block] = re.findall(r"\A# .*?\n\n```sh\n(.*?)```", readme, re.DOTALL)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip().splitlines()[-1]

    assert block.splitlines()[1] == ci
    assert ci.endswith(f"nox -s quick-{PYTHONS[0]} full-3.13 load instructions")


def test_a_missing_python_is_skipped_with_a_line_saying_so(tmp_path: Path) -> None:
    code, output = nox_with_missing_python(tmp_path, ci=False)

    assert code == 0, output
    assert f"Session quick-{MISSING} skipped: Python interpreter {MISSING} not found." in output


def test_under_ci_a_missing_python_fails_the_run(tmp_path: Path) -> None:
    code, output = nox_with_missing_python(tmp_path, ci=True)

    assert code == 1, output
    assert f"Session quick-{MISSING} failed: Python interpreter {MISSING} not found." in output


def test_nox_alone_runs_the_full_proof_on_the_newest_python_found_and_the_quick_one_on_every_other() -> None:
    done = run(ROOT, sys.executable, "-m", "nox", "--list", "--json")

    selected = [session["session"] for session in json.loads(done.stdout)]
    [newest] = [name.removeprefix("full-") for name in selected if name.startswith("full-")]
    assert selected == [*(f"quick-{python}" for python in PYTHONS if python != newest), f"full-{newest}"]
    assert [python for python in PYTHONS[PYTHONS.index(newest) + 1 :] if shutil.which(f"python{python}")] == []
