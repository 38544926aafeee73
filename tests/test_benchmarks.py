"""benchmarks/run.py runs end to end (`--quick`); its figures are too noisy to check."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from .baking import ROOT, run

COMMITTED = ROOT / "benchmarks" / "results.md"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="the benchmark needs wrk: apt-get install -y wrk")
def test_quick_run_writes_every_row_to_its_output_only(tmp_path: Path) -> None:
    before = COMMITTED.read_bytes()

    run(ROOT, sys.executable, ROOT / "benchmarks" / "run.py", "--quick", "--output", tmp_path, timeout=300)

    page = (tmp_path / "results.md").read_text(encoding="utf-8")
    databases = ["sqlite"] if "| PostgreSQL | skipped" in page else ["sqlite", "postgresql"]
    for database in databases:
        for path in ("/health", "/items/1"):
            assert f"| baked / bare, {database}, uvloop, `{path}` | >= 0.90x |" in page
            assert f"| {database} | uvloop | `{path}` | baked |" in page
            assert f"| {database} | uvloop | `{path}` | bare |" in page
        assert re.search(rf"^\| {database} \| [\d.]+ .* \| \d+ passed", page, re.MULTILINE), page
    assert COMMITTED.read_bytes() == before
