"""Benchmark the baked service against a bare aiohttp app, FastAPI and itself under gunicorn.

Full run (writes benchmarks/results.md and benchmarks/results.png; about 25 minutes on 2 cores):

    benchmarks/.venv/bin/python benchmarks/run.py

Smoke run (seconds; skips what this environment cannot run and says so):

    python benchmarks/run.py --quick --skip-matrix --output /tmp/bench

See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import socket
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

from common import HERE, TEST_DATABASE_URL, Config, note
from figures import Results
from legs_http import gunicorn_leg, http_legs
from legs_times import QUICK_SUITE, suite_leg, template_leg
from loadgen import WRK_MISSING, LoadSettings, find_wrk, wrk_version
from packaging.requirements import Requirement
from report import load_average, machine_info, markdown, write_chart

TEMPLATE = HERE.parent
REQUIREMENTS = HERE / "requirements.txt"
OPTIONAL = {"fastapi": "FastAPI leg", "uvicorn": "FastAPI leg", "gunicorn": "gunicorn leg", "matplotlib": "chart"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (kept as `arguments` for the results); --quick changes the defaults of the others."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs for a smoke test; skip legs lacking packages")
    parser.add_argument("--skip-matrix", action="store_true", help="do not time the template's own test matrix")
    parser.add_argument("--output", type=Path, default=HERE, help="folder for results.md and results.png")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the cookiecutter template to bake")
    parser.add_argument("--runs", type=int, help="runs per figure (default 5; 1 with --quick)")
    parser.add_argument("--matrix-runs", type=int, default=3, help="runs of the template's test matrix (default 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 5; 1 with --quick)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 50; 10 with --quick)")
    arguments = sys.argv[1:] if argv is None else argv
    return parser.parse_args(arguments, argparse.Namespace(arguments=arguments))


def main(argv: list[str] | None = None) -> int:
    """Run every leg, write results.md (and results.png); 1 when wrk is missing, 2 when a full run cannot run."""
    args = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print(WRK_MISSING, file=sys.stderr)
        return 1
    missing = {name for name in OPTIONAL if importlib.util.find_spec(name) is None}
    postgresql = postgres_reachable(TEST_DATABASE_URL)
    problem = preflight(args.quick, postgresql)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        config = make_config(args, Path(work), wrk, missing, postgresql)
        results = run_legs(config)
    write_results(config, results)
    return 0


def preflight(quick: bool, postgresql: bool) -> str:
    """Why a full run cannot go ahead, or "" (a quick run skips what is missing instead)."""
    if quick:
        return ""
    unmet = unmet_requirements(REQUIREMENTS)
    if unmet:
        return (
            f"this environment lacks {', '.join(unmet)}: run in the benchmark's venv, "
            f"`pip install -r {REQUIREMENTS.relative_to(TEMPLATE)}` (see benchmarks/README.md), or pass --quick"
        )
    if not postgresql:
        return f"no PostgreSQL at TEST_DATABASE_URL={TEST_DATABASE_URL}: start one, or pass --quick to skip it"
    return ""


def unmet_requirements(path: Path) -> list[str]:
    """The lines of a requirements file, and of the files it includes with -r, that this environment lacks."""
    unmet = []
    for text in path.read_text(encoding="utf-8").splitlines():
        line = text.split("#", 1)[0].strip()
        if line.startswith("-r "):
            unmet += unmet_requirements(path.parent / line.removeprefix("-r ").strip())
        elif line and not _satisfied(Requirement(line)):
            unmet.append(line)
    return unmet


def _satisfied(requirement: Requirement) -> bool:
    if requirement.marker is not None and not requirement.marker.evaluate():
        return True
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(version, prereleases=True)


def postgres_reachable(url: str) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=2):
            return True
    except OSError:
        return False


def make_config(args: argparse.Namespace, work: Path, wrk: str, missing: set[str], postgresql: bool) -> Config:
    """Settings from the command line, with --quick's defaults where none was given."""
    quick = args.quick

    def pick(value: int | None, full: int, tiny: int) -> int:
        return value if value is not None else (tiny if quick else full)

    load = LoadSettings(
        threads=1, connections=pick(args.connections, 50, 10), seconds=max(1, pick(args.duration, 5, 1))
    )
    (work / "logs").mkdir()
    return Config(
        quick=quick,
        output=args.output.resolve(),
        work=work,
        template=args.template.resolve(),
        wrk=wrk,
        runs=max(1, pick(args.runs, 5, 1)),
        matrix_runs=max(1, args.matrix_runs),
        load=load,
        warmup=not quick,
        probe_tests=5 if quick else 200,
        suite_selection=[QUICK_SUITE] if quick else [],
        skip_matrix=args.skip_matrix,
        postgresql=postgresql,
        missing=missing,
        arguments=args.arguments,
    )


def run_legs(config: Config) -> Results:
    """Legs 1 to 5, in order, into one Results."""
    postgresql = postgres_version() if config.postgresql else "not reachable"
    results = Results(machine=machine_info(wrk_version(config.wrk), postgresql), settings=describe(config))
    for leg in dict.fromkeys(OPTIONAL.values()):
        names = [f"`{name}`" for name, its_leg in OPTIONAL.items() if its_leg == leg and name in config.missing]
        if names:
            note(results, f"{leg}: {', '.join(names)} not installed here (see benchmarks/requirements.txt)")
    http_legs(config, results)
    gunicorn_leg(config, results)
    suite_leg(config, results)
    template_leg(config, results)
    return results


def describe(config: Config) -> str:
    """One sentence on how the figures were taken."""
    load = config.load
    return (
        f"Command: `{' '.join(['python benchmarks/run.py', *config.arguments])}`. "
        f"wrk -t{load.threads} -c{load.connections} -d{load.seconds}s on 127.0.0.1, "
        f"{config.runs} run(s) per figure"
        f"{'' if config.skip_matrix else f' ({config.matrix_runs} of the template matrix)'}"
        f"{', after a 1 s warm-up of each server and path' if config.warmup else ''}; "
        "each figure is the median of the runs with (min-max). The servers and wrk share the machine's cores."
    )


def postgres_version() -> str:
    """The PostgreSQL server's version, or why it is unknown."""
    try:
        import asyncpg

        async def ask() -> str:
            connection = await asyncpg.connect(TEST_DATABASE_URL, timeout=5)
            try:
                return str(await connection.fetchval("SHOW server_version"))
            finally:
                await connection.close()

        return asyncio.run(ask())
    except Exception as error:
        return f"unknown ({type(error).__name__})"


def write_results(config: Config, results: Results) -> None:
    """results.md, and results.png when matplotlib is here; print where they went and the targets."""
    results.machine["Load average"] += f", {load_average()} at the end (1 / 5 / 15 min)"
    chart = None
    if "matplotlib" not in config.missing:
        write_chart(results, config.output / "results.png")
        chart = "results.png"
    page = config.output / "results.md"
    page.write_text(markdown(results, chart), encoding="utf-8")
    print(f"wrote {page}" + (f" and {config.output / chart}" if chart else ""), flush=True)
    for target in results.ratios:
        if target.target is not None:
            verdict = "met" if target.met else "NOT MET"
            print(f"target {target.label} >= {target.target:.2f}x: {target.spread.median:.2f}x {verdict}")


if __name__ == "__main__":
    sys.exit(main())
