"""benchmarks/run.py runs end to end (`--quick`), its figures too noisy to check; benchmarks/instructions.py, the
instruction-count gate, fails a bake whose hot path got slower."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from .baking import ROOT, bake, package_of, run

COMMITTED = ROOT / "benchmarks" / "results.md"
PATHS = ("/health", "/items/1")  # leg 1's
FIGURE = r"(?:[1-9]\d*\.\d+|0\.\d*[1-9]\d*)"  # a number above zero, with its decimals
SECTION = "<!-- instructions.py writes from here -->\nthe gate's table\n<!-- instructions.py writes up to here -->"
# An extra JSON round trip of /health's answer on every request, appended to a bake's handlers.py: routes.py looks
# the handler up when the app is built, so it finds this one.
PLANTED_SLOWDOWN = '''

import json as planted_json

unplanted_health = health


async def health(request: web.Request) -> web.Response:
    """The same answer, after a JSON round trip of eight copies of it."""
    planted_json.loads(planted_json.dumps([{"status": "ok"}] * 8))
    return await unplanted_health(request)
'''


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="the benchmark needs wrk: apt-get install -y wrk")
def test_quick_run_writes_every_row_to_its_output_only_and_keeps_the_instruction_table(tmp_path: Path) -> None:
    before = COMMITTED.read_bytes()
    (tmp_path / "results.md").write_text(f"# Benchmark results\n\n{SECTION}\n", encoding="utf-8")

    run(ROOT, sys.executable, ROOT / "benchmarks" / "run.py", "--quick", "--output", tmp_path, timeout=300)

    page = (tmp_path / "results.md").read_text(encoding="utf-8")
    databases = ["sqlite"] if "| PostgreSQL | skipped" in page else ["sqlite", "postgresql"]
    assert "Every server ran on core 0 (`taskset -c 0`)" in page or "Nothing was pinned (" in page
    floors = {"baked / bare": {"/health": "0.95", "/items/1": "0.90"}, "log on / baked": dict.fromkeys(PATHS, "0.85")}
    for database in databases:
        for path in PATHS:
            for ratio, floor in floors.items():  # the last two cells: the ratio by CPU time, and from the runs at once
                target = re.escape(f"| {ratio}, {database}, uvloop, `{path}` | >= {floor[path]}x |")
                figures = rf"\| {FIGURE}x \({FIGURE}-{FIGURE}\) \| {FIGURE}x \({FIGURE}-{FIGURE}\) \|$"
                assert re.search(rf"^{target} .* {figures}", page, re.MULTILINE), target
            for server in ("baked", "bare", "log on"):  # the last cell: the server's CPU us per request
                row = re.escape(f"| {database} | uvloop | `{path}` | {server} |")
                assert re.search(rf"^{row} .* \| {FIGURE} \({FIGURE}-{FIGURE}\) \|$", page, re.MULTILINE), row
        assert re.search(rf"^\| {database} \| [\d.]+ .* \| \d+ passed", page, re.MULTILINE), page
    assert page.index("## Throughput and latency") < page.index(SECTION) < page.index("## Live events")
    assert COMMITTED.read_bytes() == before


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="the gate needs valgrind: apt-get install -y valgrind")
def test_a_planted_json_round_trip_fails_the_instruction_gate(cookies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = bake(cookies, {"event_loop": "uvloop", "database": "sqlite"})
    budget, results = tmp_path / "budget.json", tmp_path / "results.md"
    gate: list[str | Path] = [sys.executable, ROOT / "benchmarks" / "instructions.py", "--project", project, "--short"]
    gate += ["--count", "30", "--paths", "GET /health", "--budget", budget, "--results", results]
    run(ROOT, *gate, "--set-budget", "--write")  # the bake as it is sets the ceilings, and is within them
    handlers = project / "src" / package_of(project) / "handlers.py"
    handlers.write_text(handlers.read_text(encoding="utf-8") + PLANTED_SLOWDOWN, encoding="utf-8")

    done = run(ROOT, *gate, check=False)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "over budget: sqlite GET /health baked: " in done.stderr
    assert "over budget: sqlite GET /health baked, log on: " in done.stderr
    assert set(json.loads(budget.read_text(encoding="utf-8"))["ceilings"]) == {
        "sqlite GET /health baked",
        "sqlite GET /health baked, log on",
    }
    assert "| sqlite | `GET /health` | " in results.read_text(encoding="utf-8")
