"""The load proof: the baked suites pass with every core busy.

Bakes the default project on SQLite and on PostgreSQL, starts two busy
processes per core, and runs each bake's suite PLAIN times plain and HEAVY
times with `--heavy`, one run at a time; every run must pass. A test that
races the wall clock fails here long before it flakes on a shared CI runner.
`nox -s load` runs it (`-- --plain 10 --heavy 3` for the full count; the
defaults are the short form `.ci/run` runs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgresql")
HOGS_PER_CORE = 2
RUN_TIMEOUT = 1200  # seconds for one suite run, hogs and all: past it, the run counts as failed


@contextlib.contextmanager
def busy_cores() -> Iterator[int]:
    """HOGS_PER_CORE processes per core spinning for as long as the block runs; how many."""
    count = HOGS_PER_CORE * (os.cpu_count() or 1)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield count
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run_suite(project: Path, *args: str) -> tuple[bool, float, str]:
    """One run of `project`'s suite: whether it passed, its seconds, the summary line or the failures."""
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(project / "src")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - started, f"no end within {RUN_TIMEOUT} s"
    lines = done.stdout.strip().splitlines()
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    said = "\n    ".join(failures) if failures else (lines[-1] if lines else done.stderr[-500:])
    return done.returncode == 0, time.monotonic() - started, said


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plain", type=int, default=3, help="plain runs per bake (default 3)")
    parser.add_argument("--heavy", type=int, default=1, help="--heavy runs per bake (default 1)")
    options = parser.parse_args()

    failed = 0
    with tempfile.TemporaryDirectory() as folder, busy_cores() as hogs:
        print(f"{hogs} busy processes on {os.cpu_count()} cores", flush=True)
        for database in DATABASES:
            project = Path(
                cookiecutter(
                    str(ROOT),
                    no_input=True,
                    output_dir=folder,
                    extra_context={"database": database, "project_slug": f"load-{database}"},
                )
            )
            runs = [("plain", [])] * options.plain + [("heavy", ["--heavy"])] * options.heavy
            for number, (kind, args) in enumerate(runs, start=1):
                passed, seconds, said = run_suite(project, *args)
                failed += not passed
                print(
                    f"{database} {kind} run {number}: {'passed' if passed else 'FAILED'} in {seconds:.0f} s: {said}",
                    flush=True,
                )
    print(f"load proof: {'every run passed' if not failed else f'{failed} runs failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
