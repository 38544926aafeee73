"""What every leg shares: the run's settings, baking, timing commands, saying what was skipped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from figures import Results, Spread
from loadgen import LoadSettings

HERE = Path(__file__).resolve().parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Config:
    """One run's settings and the places it works in."""

    quick: bool
    output: Path
    work: Path
    template: Path
    wrk: str
    runs: int
    matrix_runs: int
    load: LoadSettings
    warmup: bool
    probe_tests: int
    suite_selection: list[str]
    skip_matrix: bool
    postgresql: bool
    missing: set[str] = field(default_factory=set)
    arguments: list[str] = field(default_factory=list)
    bakes: dict[tuple[str, str], Path] = field(default_factory=dict)


def note(results: Results, message: str) -> None:
    """Record and print a skipped piece."""
    results.skipped.append(message)
    print(f"skipped {message}", flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without pytest's own variables (set when a test runs this script)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return {**env, **extra}


def bake(config: Config, event_loop: str, database: str) -> Path:
    """The default project baked with these two answers (baked once per run)."""
    key = (event_loop, database)
    if key not in config.bakes:
        folder = config.work / f"bake-{event_loop}-{database}"
        command = cookiecutter_command(config, folder, f"event_loop={event_loop}", f"database={database}")
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        [project] = folder.iterdir()
        config.bakes[key] = project
    return config.bakes[key]


def cookiecutter_command(config: Config, folder: Path, *answers: str) -> list[str]:
    """`cookiecutter --no-input -o folder template answers...` from this interpreter, with a private config."""
    settings = config.work / "cookiecutter.yaml"
    if not settings.exists():  # keeps the user's ~/.cookiecutterrc out, and replay files out of their home
        lines = [f"{key}: {json.dumps(str(config.work / key))}" for key in ("cookiecutters_dir", "replay_dir")]
        settings.write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", str(settings)]
    return [*command, "-o", str(folder), str(config.template), *answers]


def timed(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> tuple[float, str, int]:
    """Wall time, output and exit code of one command."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return time.perf_counter() - started, done.stdout + done.stderr, done.returncode


def timed_runs(label: str, runs: int, command: list[str], cwd: Path, env: dict[str, str]) -> tuple[Spread, str]:
    """Run a command `runs` times: its wall times, and a note on failures or the test count."""
    seconds, notes = [], set()
    for run in range(runs):
        elapsed, output, code = timed(command, cwd, env)
        seconds.append(elapsed)
        notes.add(summary_of(output, code))
        print(f"  {label}: run {run + 1}/{runs}: {elapsed:.2f} s {summary_of(output, code)}", flush=True)
    return Spread(tuple(seconds)), "; ".join(sorted(notes))


def summary_of(output: str, code: int) -> str:
    """pytest's closing counts (`73 passed`); on failure the exit code and the failed tests too."""
    found = re.findall(r"(\d+ (?:passed|failed|skipped|errors?|tests? collected|deselected))", output)
    counts = ", ".join(dict.fromkeys(found))
    if code == 0:
        return counts
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    return f"FAILED (exit {code}) {counts}{': ' if failed else ''}{', '.join(f'`{name}`' for name in failed[:3])}"
