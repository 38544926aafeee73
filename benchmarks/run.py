"""Benchmark the baked service against a bare aiohttp app doing the same work, and time the baked test suite.

    python benchmarks/run.py                       # about 5 minutes on 2 cores; rewrites results.md and results.png
    python benchmarks/run.py --quick --output DIR  # a smoke run, well under a minute; its figures mean nothing

Leg 1 bakes the template (database sqlite and postgresql, event_loop uvloop), starts each bake with
`python -m async_service` and bare_app.py on the same database, and loads `GET /health` and `GET /items/1`
of both with wrk, round by round. Leg 2 times each bake's `pytest` and `pytest --collect-only`.
PostgreSQL is reached at TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test), where
each run creates scratch databases and drops them at the end. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent
HOST = "127.0.0.1"
PATHS = ("/health", "/items/1")
SERVERS = ("baked", "bare")
FLOOR = 0.90  # the target for every baked / bare ratio
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
WRK_MISSING = "wrk not found: install it with 'apt-get install -y wrk'"
LIBRARIES = ("aiohttp", "uvloop", "aiosqlite", "asyncpg", "pytest", "pytest-asyncio", "cookiecutter", "matplotlib")


class BenchmarkError(RuntimeError):
    """Something the figures cannot be taken without failed."""


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    rounds: int
    seconds: int
    connections: int
    warmup: bool
    suite_args: tuple[str, ...]
    work: Path


@dataclass(frozen=True)
class Load:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float


@dataclass
class Pair:
    """The baked service and the bare app on one database and loop, and their wrk runs."""

    database: str
    loop: str
    ports: dict[str, int]
    loads: dict[tuple[str, str], list[Load]] = field(default_factory=lambda: defaultdict(list))

    def ratios(self, path: str) -> list[float]:
        """baked / bare req/s, round by round."""
        return [a.rps / b.rps for a, b in zip(self.loads["baked", path], self.loads["bare", path], strict=True)]


@dataclass
class Suite:
    """Wall times of one bake's test suite and of its collection, run by run."""

    database: str
    suite: list[float] = field(default_factory=list)
    collect: list[float] = field(default_factory=list)
    outcome: str = ""


def spread(values: list[float], form: str, unit: str = "") -> str:
    """`median (min-max)` of the values."""
    return f"{statistics.median(values):{form}}{unit} ({min(values):{form}}-{max(values):{form}})"


def call(port: int, method: str, path: str, body: object = None) -> tuple[int, object]:
    """One HTTP request to 127.0.0.1: the status and the decoded JSON body."""
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        headers = {} if body is None else {"Content-Type": "application/json"}
        connection.request(method, path, None if body is None else json.dumps(body), headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def healthy(port: int) -> bool:
    """Whether GET /health answers 200."""
    try:
        return call(port, "GET", "/health")[0] == 200
    except OSError:
        return False


@contextmanager
def serving(label: str, command: list[str], env: dict[str, str], logs: Path) -> Iterator[int]:
    """Start a server on a free port, yield the port once /health answers 200, stop it on the way out."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    log = logs / f"{label}.log"
    with log.open("wb") as out:
        environment = {**os.environ, **env, "HOST": HOST, "PORT": str(port)}
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise BenchmarkError(f"{label} did not come up (exit code {process.poll()}):\n{tail}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bake(work: Path, loop: str, database: str) -> Path:
    """The default project with these answers, baked into `work`."""
    folder = work / f"bake-{loop}-{database}"
    answers = [f"event_loop={loop}", f"database={database}"]
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--default-config", "-o", str(folder)]
    done = subprocess.run([*command, str(TEMPLATE), *answers], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchmarkError(f"cookiecutter {' '.join(answers)} failed:\n{done.stderr[-2000:]}")
    [project] = folder.iterdir()
    return project


def postgres(sql: str) -> str:
    """Run one statement on the TEST_DATABASE_URL database; its first value."""

    async def run() -> str:
        connection = await asyncpg.connect(ADMIN_URL, timeout=5)
        try:
            return str(await connection.fetchval(sql))
        finally:
            await connection.close()

    return asyncio.run(run())


def postgres_version() -> str | None:
    """The version of the PostgreSQL server at TEST_DATABASE_URL, None when it does not answer."""
    try:
        return postgres("SHOW server_version")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None


def scratch_database(stack: ExitStack) -> str:
    """The URL of a new PostgreSQL database, dropped when `stack` closes."""
    name = f"bench_{secrets.token_hex(4)}"
    postgres(f"CREATE DATABASE {name}")
    stack.callback(postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return urlsplit(ADMIN_URL)._replace(path=f"/{name}").geturl()


def start_pair(settings: Settings, stack: ExitStack, project: Path, database: str, loop: str) -> Pair:
    """The bake and the bare app on one fresh database holding item 1, checked to answer alike."""
    url = f"sqlite:///{settings.work / f'{loop}.db'}" if database == "sqlite" else scratch_database(stack)
    [package] = [path.name for path in (project / "src").iterdir() if path.is_dir()]
    env = {"DATABASE_URL": url, "PYTHONPATH": str(project / "src")}
    command = [sys.executable, "-m", package]
    baked = stack.enter_context(serving(f"baked-{database}-{loop}", command, env, settings.work))
    status, body = call(baked, "POST", "/items", {"name": "bench", "quantity": 1})
    if status != 201 or not isinstance(body, dict) or body.get("id") != 1:
        raise BenchmarkError(f"POST /items answered {status} {body!r}, expected 201 and id 1")
    command = [sys.executable, str(HERE / "bare_app.py"), loop]
    bare = stack.enter_context(serving(f"bare-{database}-{loop}", command, {"DATABASE_URL": url}, settings.work))
    for path in PATHS:
        answers = call(baked, "GET", path), call(bare, "GET", path)
        if answers[0] != answers[1] or answers[0][0] != 200:
            raise BenchmarkError(f"{path}: the baked service answers {answers[0]}, the bare app {answers[1]}")
    return Pair(database, loop, {"baked": baked, "bare": bare})


def wrk(settings: Settings, port: int, path: str, seconds: int) -> Load:
    """Load one path for `seconds`; every response must be a 2xx."""
    url = f"http://{HOST}:{port}{path}"
    script = str(HERE / "wrk_report.lua")
    command = ["wrk", "-t1", f"-c{settings.connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    reports = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not reports:
        raise BenchmarkError(f"wrk exited {done.returncode} on {url}: {done.stderr or done.stdout}")
    report = json.loads(reports[-1])
    if not report["requests"] or any(report["errors"].values()):
        raise BenchmarkError(f"{url}: {report['requests']} requests, errors {report['errors']}")
    return Load(report["requests"] * 1e6 / report["duration_us"], report["p50_us"] / 1e3, report["p99_us"] / 1e3)


def http_leg(settings: Settings, pairs: list[Pair]) -> None:
    """A warm-up, then per round, for each path of each pair, the two servers back to back."""
    if settings.warmup:
        for pair in pairs:
            for path in PATHS:
                for server in SERVERS:
                    wrk(settings, pair.ports[server], path, 1)
    for round_ in range(settings.rounds):
        order = SERVERS if round_ % 2 == 0 else SERVERS[::-1]  # neither side always goes first
        for pair in pairs:
            for path in PATHS:
                for server in order:
                    load = wrk(settings, pair.ports[server], path, settings.seconds)
                    pair.loads[server, path].append(load)
                    print(
                        f"  round {round_ + 1}/{settings.rounds} {pair.database:<10} {pair.loop:<7} {server:<5} "
                        f"{path:<8} {load.rps:>8,.0f} req/s  p50 {load.p50_ms:5.2f} ms  p99 {load.p99_ms:6.2f} ms",
                        flush=True,
                    )


def timed(command: list[str], project: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall time of a command in a bake, and pytest's closing line (with the exit code unless 0)."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    summary = re.sub(r" in [\d.]+s", "", (done.stdout.strip().splitlines() or [""])[-1].strip("= "))
    return elapsed, summary if done.returncode == 0 else f"FAILED (exit {done.returncode}): {summary}"


def suite_leg(settings: Settings, project: Path, database: str) -> Suite:
    """Time `pytest` and `pytest --collect-only` in a bake, alternately, `rounds` times each."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(project / "src")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *settings.suite_args]
    result = Suite(database)
    for run in range(settings.rounds):
        seconds, result.outcome = timed(command, project, env)
        result.suite.append(seconds)
        result.collect.append(timed([*command, "--collect-only"], project, env)[0])
        print(
            f"  {database} run {run + 1}/{settings.rounds}: suite {result.suite[-1]:.2f} s, "
            f"collect-only {result.collect[-1]:.2f} s ({result.outcome})",
            flush=True,
        )
    return result


def machine(postgresql: str) -> dict[str, str]:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo")
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE) if cpuinfo.exists() else []
    wrk_words = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split()
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{models[0] if models else platform.processor()}, {os.cpu_count()} cores",
        "OS": f"{os_name()}, {platform.release()}",
        "Python": platform.python_version(),
        "wrk": wrk_words[1].removeprefix("debian/") if len(wrk_words) > 1 else "unknown",
        "PostgreSQL": postgresql,
        "Libraries": ", ".join(versions),
    }


def os_name() -> str:
    """The distribution's name, or the system's."""
    try:
        return platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        return platform.system()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def markdown(title: str, settings: Settings, facts: dict[str, str], pairs: list[Pair], suites: list[Suite]) -> str:
    """results.md."""
    warmup = " after a 1 s warm-up per server and path" if settings.warmup else ""
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{title}`. wrk -t1 -c{settings.connections} -d{settings.seconds}s on 127.0.0.1{warmup}, "
        f"{settings.rounds} round(s); every figure is the median of the rounds with (min-max). "
        "The servers, wrk and PostgreSQL share the machine's cores: compare figures within this run only.",
        "",
        "| Machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        "## Targets",
        "",
        "Each ratio is baked / bare req/s of two runs taken back to back, computed round by round.",
        "",
        "| Target | Floor | Measured | Met |",
        "|---|---|---|---|",
    ]
    for pair in pairs:
        for path in PATHS:
            ratios = pair.ratios(path)
            met = "yes" if statistics.median(ratios) >= FLOOR else "**NO**"
            label = f"baked / bare, {pair.database}, {pair.loop}, `{path}`"
            lines.append(f"| {label} | >= {FLOOR:.2f}x | {spread(ratios, '.3f', 'x')} | {met} |")
    lines += [
        "",
        "## Throughput and latency",
        "",
        "| Database | Loop | Path | Server | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for pair in pairs:
        for path in PATHS:
            for server in SERVERS:
                loads = pair.loads[server, path]
                figures = [spread([load.rps for load in loads], ",.0f")]
                figures += [
                    spread([load.p50_ms for load in loads], ".2f"),
                    spread([load.p99_ms for load in loads], ".2f"),
                ]
                lines.append(f"| {pair.database} | {pair.loop} | `{path}` | {server} | {' | '.join(figures)} |")
    command = " ".join(["python -m pytest -q -p no:cacheprovider", *settings.suite_args])
    lines += [
        "",
        "## Test suite",
        "",
        f"Wall time of `{command}` in each bake (uvloop) and of the same command with `--collect-only` "
        "(start-up, imports, collection); the ratio is taken run by run.",
        "",
        "| Database | pytest s | --collect-only s | suite / collect | Outcome |",
        "|---|---|---|---|---|",
    ]
    for suite in suites:
        ratios = [a / b for a, b in zip(suite.suite, suite.collect, strict=True)]
        figures = [spread(suite.suite, ".2f"), spread(suite.collect, ".2f"), spread(ratios, ".1f", "x")]
        lines.append(f"| {suite.database} | {' | '.join(figures)} | {suite.outcome} |")
    return "\n".join(lines) + "\n"


def chart(pairs: list[Pair], path: Path) -> None:
    """results.png: median req/s of both servers per database and path, min-max as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(pair, route) for pair in pairs for route in PATHS]
    figure, axes = plt.subplots(figsize=(max(7.0, 1.8 * len(groups)), 4.5))
    for offset, server, label in ((-0.2, "baked", "baked service"), (0.2, "bare", "bare aiohttp, same query")):
        runs = [[load.rps for load in pair.loads[server, route]] for pair, route in groups]
        medians = [statistics.median(values) for values in runs]
        errors = [[m - min(v) for m, v in zip(medians, runs, strict=True)]]
        errors += [[max(v) - m for m, v in zip(medians, runs, strict=True)]]
        axes.bar([i + offset for i in range(len(groups))], medians, 0.4, yerr=errors, capsize=3, label=label)
    tops = [max(load.rps for server in SERVERS for load in pair.loads[server, route]) for pair, route in groups]
    for i, ((pair, route), top) in enumerate(zip(groups, tops, strict=True)):
        axes.annotate(f"{statistics.median(pair.ratios(route)):.2f}x", (i, top), ha="center", va="bottom")
    axes.set_ylim(0, max(tops) * 1.25)
    axes.set_xticks(range(len(groups)), [f"{pair.database}, {pair.loop}\n{route}" for pair, route in groups])
    axes.set_ylabel("requests per second (median of the rounds)")
    axes.set_title("Baked service vs bare aiohttp doing the same work (baked / bare above)")
    axes.legend(loc="upper left", ncols=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> int:
    """Run both legs and write the results; 1 when something is missing or fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, wrk -c10 -d1s, a few tests: a smoke run")
    parser.add_argument("--rounds", type=int, help="wrk rounds and suite runs (default 5; 1 with --quick)")
    parser.add_argument("--loops", nargs="+", choices=("uvloop", "asyncio"), default=["uvloop"], help="event loops")
    parser.add_argument("--output", type=Path, default=HERE, help="folder for results.md and results.png")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 1
    load_at_start = load_average()
    postgresql = postgres_version()
    if postgresql is None:
        if not args.quick:
            print(f"no PostgreSQL answers at TEST_DATABASE_URL={ADMIN_URL}: start one, or use --quick", file=sys.stderr)
            return 1
        print(f"PostgreSQL skipped: nothing answers at TEST_DATABASE_URL={ADMIN_URL}", file=sys.stderr)
    databases = ["sqlite", "postgresql"] if postgresql else ["sqlite"]
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as work, ExitStack() as stack:
        settings = Settings(
            rounds=args.rounds or (1 if args.quick else 5),
            seconds=1 if args.quick else 5,
            connections=10 if args.quick else 50,
            warmup=not args.quick,
            suite_args=("-k", "health") if args.quick else (),
            work=Path(work),
        )
        try:
            loops = dict.fromkeys([*args.loops, "uvloop"])  # leg 2 times the uvloop bakes
            bakes = {(loop, db): bake(settings.work, loop, db) for loop in loops for db in databases}
            pairs = [start_pair(settings, stack, bakes[loop, db], db, loop) for db in databases for loop in args.loops]
            print("== leg 1: baked service vs bare aiohttp", flush=True)
            http_leg(settings, pairs)
            stack.close()  # the servers stop before the suites run
            print("== leg 2: the baked test suite", flush=True)
            suites = [suite_leg(settings, bakes["uvloop", database], database) for database in databases]
        except (BenchmarkError, subprocess.SubprocessError, asyncpg.PostgresError) as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
    facts = machine(postgresql or f"skipped: nothing answers at TEST_DATABASE_URL={ADMIN_URL}")
    facts["Load average"] = f"{load_at_start} at the start, {load_average()} at the end (1 / 5 / 15 min)"
    command = " ".join(["python benchmarks/run.py", *sys.argv[1:]])
    page = markdown(command, settings, facts, pairs, suites)
    if importlib.util.find_spec("matplotlib"):
        chart(pairs, args.output / "results.png")
        page += "\n![Benchmark chart](results.png)\n"
    else:
        print("no chart: matplotlib is not installed", file=sys.stderr)
    (args.output / "results.md").write_text(page, encoding="utf-8")
    print(f"wrote {args.output / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
