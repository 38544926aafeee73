"""The benchmark script runs end to end with tiny durations; the figures themselves are not checked (too noisy)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .baking import ROOT

RUN = ROOT / "benchmarks" / "run.py"
COMMITTED = ROOT / "benchmarks" / "results.md"
WRK_MISSING = "wrk not found: install it with 'apt-get install -y wrk'"
# What the template's test environment may lack (they are in benchmarks/requirements.txt only).
OPTIONAL = {"fastapi": "FastAPI leg", "gunicorn": "gunicorn leg", "matplotlib": "chart"}


def run_benchmark(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """benchmarks/run.py with this interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, str(RUN), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_a_missing_wrk_is_named_with_its_install_command(tmp_path: Path) -> None:
    done = run_benchmark("--quick", "--output", str(tmp_path), env={**os.environ, "PATH": str(tmp_path)})

    assert (done.returncode, done.stderr.strip()) == (1, WRK_MISSING)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason=f"benchmarks need wrk; {WRK_MISSING}")
def test_quick_run_measures_every_leg_and_writes_results_elsewhere(tmp_path: Path) -> None:
    before = COMMITTED.read_bytes() if COMMITTED.exists() else None

    done = run_benchmark("--quick", "--skip-matrix", "--output", str(tmp_path))

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    page = (tmp_path / "results.md").read_text(encoding="utf-8")
    for row in ("| baked service | uvloop | `/health` |", "| bare aiohttp | asyncio | `/items/1` |", "bake (cookie"):
        assert row in page
    assert "sqlite: DB isolation per test" in page
    assert "skipped the template's test matrix" in output
    missing = [leg for name, leg in OPTIONAL.items() if importlib.util.find_spec(name) is None]
    assert [leg for leg in missing if f"skipped {leg}" not in output] == []
    assert (tmp_path / "results.png").exists() == ("chart" not in missing)
    assert (COMMITTED.read_bytes() if COMMITTED.exists() else None) == before
