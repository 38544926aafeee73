"""Legs 4 and 5: the generated test suite's times and isolation cost; the template's bake and matrix."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from common import HERE, TEST_DATABASE_URL, Config, bake, clean_env, cookiecutter_command, note, timed, timed_runs
from figures import Results, Spread, Timing

PROBE_FILE = "tests/test_zz_isolation_probe.py"
QUICK_SUITE = "tests/test_p03_database_rollback.py"  # --quick times this file, not the whole suite
PROBE_SOURCE = '''"""Written by benchmarks/run.py: the same empty test with the rolled-back `store` or without it."""

from collections.abc import AsyncIterator

import pytest


@pytest.fixture
async def nothing() -> AsyncIterator[None]:
    yield None


@pytest.mark.parametrize("n", range({count}))
async def test_isolated(n: int, store: object) -> None:
    assert store is not None


@pytest.mark.parametrize("n", range({count}))
async def test_async_fixture(n: int, database: object, nothing: None) -> None:
    assert database is not None


@pytest.mark.parametrize("n", range({count}))
async def test_shared(n: int, database: object) -> None:
    assert database is not None
'''


def suite_leg(config: Config, results: Results) -> None:
    """Leg 4: suite vs collection wall time, and the per-test cost of the rollback fixture, per database."""
    print("== leg 4: the generated test suite", flush=True)
    for database in ("sqlite", "postgresql"):
        if database == "postgresql" and not config.postgresql:
            note(results, f"PostgreSQL figures: nothing listens at TEST_DATABASE_URL={TEST_DATABASE_URL}")
            continue
        project = bake(config, "uvloop", database)
        if database == "sqlite" or not config.quick:
            time_suite(config, results, project, database)
        else:
            note(results, "PostgreSQL suite times (--quick times the SQLite suite only)")
        results.timings += isolation_cost(config, project, database)


def time_suite(config: Config, results: Results, project: Path, database: str) -> None:
    """Wall time of `pytest` and of `pytest --collect-only`, and their difference run by run."""
    env = clean_env(PYTHONPATH=str(project / "src"))
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *config.suite_selection]
    suite, suite_note = timed_runs(f"{database} suite", config.runs, pytest, project, env)
    collect_only = [*pytest, "--collect-only"]
    collect, collect_note = timed_runs(f"{database} collect-only", config.runs, collect_only, project, env)
    running = Spread(tuple(a - b for a, b in zip(suite.values, collect.values, strict=True)))
    scope = f" ({' '.join(config.suite_selection)} only)" if config.suite_selection else ""
    results.timings += [
        Timing(4, f"{database}: test suite (pytest){scope}", "s", suite, suite_note),
        Timing(4, f"{database}: pytest --collect-only{scope}", "s", collect, collect_note),
        Timing(4, f"{database}: suite minus collection{scope}", "s", running, "run by run"),
    ]


def isolation_cost(config: Config, project: Path, database: str) -> list[Timing]:
    """What taking the rolled-back `store` adds to a test, in total and for the database work alone."""
    probe = project / PROBE_FILE
    probe.write_text(PROBE_SOURCE.format(count=config.probe_tests), encoding="utf-8")
    output = config.work / f"probe-{database}.json"
    env = clean_env(PYTHONPATH=os.pathsep.join([str(project / "src"), str(HERE)]), BENCH_PROBE_OUTPUT=str(output))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "probe_plugin", "-q", PROBE_FILE]
    runs: list[dict[str, float]] = []
    try:
        for run in range(config.runs):
            _, text, code = timed(command, project, env)
            if code != 0:
                raise RuntimeError(f"the isolation probe failed in {project}:\n{text[-3000:]}")
            runs.append(probe_medians(json.loads(output.read_text(encoding="utf-8"))))
            cost = runs[-1]["isolated"] - runs[-1]["shared"]
            print(f"  {database} isolation: run {run + 1}/{config.runs}: {cost:.3f} ms per test", flush=True)
    finally:
        probe.unlink()
    return isolation_timings(config, database, runs)


def isolation_timings(config: Config, database: str, runs: list[dict[str, float]]) -> list[Timing]:
    """The two per-test figures of the probe runs, with the baseline they are measured against."""
    count = config.probe_tests
    baseline = statistics.median(run["shared"] for run in runs)
    fixture = statistics.median(run["async_fixture"] - run["shared"] for run in runs)
    total = Spread(tuple(run["isolated"] - run["shared"] for run in runs))
    database_work = Spread(tuple(run["isolated"] - run["async_fixture"] for run in runs))
    return [
        Timing(
            4,
            f"{database}: DB isolation per test, total",
            "ms",
            total,
            f"median of {count} tests taking `store` minus median of {count} taking only the session connection "
            f"(those take {baseline:.2f} ms each)",
        ),
        Timing(
            4,
            f"{database}: DB isolation per test, transaction only",
            "ms",
            database_work,
            f"the same minus an empty async fixture's cost ({fixture:.2f} ms): the BEGIN/ROLLBACK round trips",
        ),
    ]


def probe_medians(durations: dict[str, float]) -> dict[str, float]:
    """Median milliseconds of each group of probe tests (`isolated`, `async_fixture`, `shared`)."""
    return {
        group: statistics.median(seconds for node, seconds in durations.items() if f"::test_{group}[" in node) * 1e3
        for group in ("isolated", "async_fixture", "shared")
    }


def template_leg(config: Config, results: Results) -> None:
    """Leg 5: `cookiecutter --no-input` wall time, and the template's own test matrix."""
    print("== leg 5: the template", flush=True)
    seconds = []
    for run in range(config.runs):
        folder = config.work / f"bake-timing-{run}"
        elapsed, output, code = timed(cookiecutter_command(config, folder), config.work, clean_env())
        if code != 0:
            raise RuntimeError(f"cookiecutter failed:\n{output}")
        seconds.append(elapsed)
        print(f"  bake: run {run + 1}/{config.runs}: {elapsed:.2f} s", flush=True)
    results.timings.append(Timing(5, "bake (cookiecutter --no-input)", "s", Spread(tuple(seconds)), "CLI, cold start"))
    if config.skip_matrix:
        note(results, "the template's test matrix (--skip-matrix)")
        return
    command = [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", "tests/"]
    spread, summary = timed_runs("template matrix", config.matrix_runs, command, config.template, clean_env())
    results.timings.append(Timing(5, "template test matrix (pytest -n 2 tests/)", "s", spread, summary))
