"""Benchmark the baked service against a bare aiohttp app doing the same work, its live events, its cost
against an earlier commit of the template, and time the baked test suite.

    python benchmarks/run.py                       # about 18 minutes on 2 cores; rewrites results.md and results.png
    python benchmarks/run.py --quick --output DIR  # a smoke run, about a minute; its figures mean nothing

Leg 1 bakes the template (database sqlite and postgresql, event_loop uvloop), starts each bake with
`python -m async_service` twice, its access log off and on, and bare_app.py, all three on the same database,
and loads `GET /health` and `GET /items/1` of each with wrk, round by round: back to back, then the three at
once. Leg 2 loads `GET /health` and `POST /items` of the same bakes and of bakes of the --baseline commit
(taken with `git archive`), round by round. Leg 3 measures live events from a client process (live.py):
commit-to-delivery latency to a subscriber on the same and on another service process, and a burst of
creates delivered to many subscribers. Leg 4 times each bake's `pytest` and `pytest --collect-only`.
PostgreSQL is reached at TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test), where each
run creates scratch databases and drops them at the end. Where taskset is found and cores 0 and 1 are free
to use, every server runs on core 0 and every wrk on core 1 (--no-pin: nothing is pinned). See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import io
import json
import os
import platform
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from subprocess import PIPE
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import live
import uvloop

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent
HOST = "127.0.0.1"
PATHS = ("/health", "/items/1")
SERVERS = ("baked", "bare", "log on")  # leg 1: the bake, bare_app.py, the same bake with its access log on
# Leg 1's targets, per database and loop: the median of server / against req/s on the path, taken round by round,
# must be at least the floor.
FLOORS: dict[tuple[str, str, str], float] = {
    # (server, against, path): floor
    ("baked", "bare", "/health"): 0.95,
    ("baked", "bare", "/items/1"): 0.90,
    ("log on", "baked", "/health"): 0.85,
    ("log on", "baked", "/items/1"): 0.85,
}
SERVER_CORE, WRK_CORE = 0, 1  # where `taskset` pins every server and every wrk, unless --no-pin
BASELINE = "c94295f"  # the default --baseline: the template before the transactional outbox of events
VERSIONS = ("now", "baseline", "events off")  # leg 2; events off: the bake now, its events triggers dropped
VERSION_PATHS = ("/health", "POST /items")
FEW_WRITERS = 10  # leg 2 loads POST /items with these connections too: writes must scale from here to the full count
EVENT_TRIGGERS = ("item_created", "item_deleted")  # on items, in every database: what "events off" drops
VERSION_ROUNDS = 3
SUBSCRIBERS = 100  # leg 3's fan-out: websockets on one service process
BURST = 2_000  # leg 3's fan-out: creates per round
BURST_CONCURRENCY = 8  # POST /items in flight during a burst
FANOUT_ROUNDS = 3
LATENCY_SAMPLES = 300
PIDS: dict[int, int] = {}  # the process id of the server on each port `serving` has open
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
WRK_MISSING = "wrk not found: install it with 'apt-get install -y wrk'"
# instructions.py's section of results.md lies between these: run.py keeps it when it rewrites the file.
INSTRUCTIONS_SECTION = ("<!-- instructions.py writes from here -->", "<!-- instructions.py writes up to here -->")
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
    unpinned: str  # why the servers and wrk are not pinned to a core each; empty when they are
    version_rounds: int = VERSION_ROUNDS
    latency_samples: int = LATENCY_SAMPLES
    subscribers: int = SUBSCRIBERS
    burst: int = BURST
    fanout_rounds: int = FANOUT_ROUNDS

    @property
    def pin(self) -> bool:
        """Whether every server runs under `taskset -c 0` and every wrk under `taskset -c 1`."""
        return not self.unpinned


@dataclass(frozen=True)
class Load:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # the server's CPU time per request (user and system, every thread), from /proc over the run


@dataclass
class Pair:
    """Servers on one database and loop (leg 1: the baked service, the bare app and the bake with its access log
    on; leg 2: the bake now and at the baseline), the requests loaded on each, and their wrk runs."""

    database: str
    loop: str
    ports: dict[str, int]
    servers: tuple[str, ...] = SERVERS
    paths: tuple[str, ...] = PATHS
    connections: int | None = None  # wrk's -c; None: the settings'
    loads: dict[tuple[str, str], list[Load]] = field(default_factory=lambda: defaultdict(list))
    # Leg 1's runs with every server loaded at the same time, as `loads` holds those back to back.
    at_once: dict[tuple[str, str], list[Load]] = field(default_factory=lambda: defaultdict(list))

    def ratios(
        self, path: str, server: str | None = None, against: str | None = None, at_once: bool = False
    ) -> list[float]:
        """server / against req/s on `path`, round by round, from the runs back to back (or `at_once`); by default
        the first server / the second (baked / bare, now / baseline)."""
        loads = self.at_once if at_once else self.loads
        over = loads[server or self.servers[0], path]
        under = loads[against or self.servers[1], path]
        return [a.rps / b.rps for a, b in zip(over, under, strict=True)]

    def cpu_ratios(self, path: str, server: str, against: str) -> list[float]:
        """against / server CPU time per request on `path`, round by round: like `ratios`, 1.00x when the two cost
        the same, lower when `server` costs more."""
        over, under = self.loads[server, path], self.loads[against, path]
        return [b.cpu_us / a.cpu_us for a, b in zip(over, under, strict=True)]


@dataclass
class Live:
    """Leg 3 on one database: latency samples by where the subscriber is, and fan-out rounds."""

    database: str
    latency: dict[str, live.Latency] = field(default_factory=dict)
    fanouts: list[live.Fanout] = field(default_factory=list)


@dataclass
class Report:
    """Everything results.md shows."""

    pairs: list[Pair]  # leg 1
    versions: list[Pair]  # leg 2 (empty when the baseline could not be baked)
    baseline: str  # the revision, or why leg 2 was skipped
    lives: list[Live]  # leg 3
    suites: list[Suite]  # leg 4


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


def percentile(values: list[float], rank: int) -> float:
    """The rank-th percentile (1-99), interpolated between the samples."""
    return statistics.quantiles(values, n=100, method="inclusive")[rank - 1]


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


def pinned(settings: Settings, core: int, command: list[str]) -> list[str]:
    """`command` under `taskset -c <core>` when the run pins (taskset sets the affinity, then becomes the command:
    the process id stays the command's); as it is when not."""
    return ["taskset", "-c", str(core), *command] if settings.pin else command


def why_unpinned(no_pin: bool) -> str:
    """Why the servers and wrk cannot run on a core each (0 and 1); empty when they can."""
    if no_pin:
        return "--no-pin"
    if shutil.which("taskset") is None:
        return "taskset not found"
    if (os.cpu_count() or 1) < 2 or not {SERVER_CORE, WRK_CORE} <= os.sched_getaffinity(0):
        return f"cores {SERVER_CORE} and {WRK_CORE} are not both available"
    return ""


@contextmanager
def serving(label: str, command: list[str], env: dict[str, str], logs: Path, startup: float = 30) -> Iterator[int]:
    """Start a server on a free port, yield the port once /health answers 200 (within `startup` seconds), stop it
    on the way out."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    log = logs / f"{label}.log"
    with log.open("wb") as out:
        environment = {**os.environ, **env, "HOST": HOST, "PORT": str(port)}
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup
        while not healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise BenchmarkError(f"{label} did not come up (exit code {process.poll()}):\n{tail}")
            time.sleep(0.1)
        PIDS[port] = process.pid
        yield port
    finally:
        PIDS.pop(port, None)
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bake(work: Path, loop: str, database: str, template: Path = TEMPLATE, version: str = "now") -> Path:
    """The default project with these answers, baked from `template` into `work`."""
    folder = work / f"bake-{version}-{loop}-{database}"
    answers = [f"event_loop={loop}", f"database={database}"]
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--default-config", "-o", str(folder)]
    # Run from `work`: from the repository, `python -m` would import its local_extensions.py, not the template's.
    done = subprocess.run([*command, str(template), *answers], cwd=work, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchmarkError(f"cookiecutter {' '.join(answers)} failed:\n{done.stderr[-2000:]}")
    [project] = folder.iterdir()
    return project


def postgres(sql: str, url: str = ADMIN_URL) -> str:
    """Run one statement on the database at `url` (by default TEST_DATABASE_URL's); its first value."""

    async def run() -> str:
        connection = await asyncpg.connect(url, timeout=5)
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


def baseline_template(work: Path, revision: str) -> Path | str:
    """The template at `revision` of this repository, exported with `git archive` (the working tree and the
    repository stay as they are); a string saying why when it cannot be."""
    try:
        done = subprocess.run(
            ["git", "-C", str(TEMPLATE), "archive", "--format=tar", revision], capture_output=True, timeout=60
        )
    except OSError as error:
        return f"git cannot run: {error}"
    if done.returncode != 0:
        return f"`git archive {revision}` failed: {done.stderr.decode(errors='replace').strip()}"
    folder = work / f"template-{revision}"
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(folder, filter="data")
    return folder


def database_url(work: Path, stack: ExitStack, database: str, name: str) -> str:
    """A fresh database: a new SQLite file in the work folder, or a PostgreSQL scratch database."""
    return f"sqlite:///{work / f'{name}.db'}" if database == "sqlite" else scratch_database(stack)


def service(project: Path, url: str, access_log: bool = False) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run a bake as `python -m <package>` on the database at `url`, its access
    log off unless `access_log`."""
    [package] = [path.name for path in (project / "src").iterdir() if path.is_dir()]
    # Off by default, like the bare app: baked / bare compares the work of answering, not of logging it. Leg 1's
    # "log on" server is the same bake with it on, for what the log costs.
    env = {"DATABASE_URL": url, "PYTHONPATH": str(project / "src"), "ACCESS_LOG": "on" if access_log else "off"}
    return [sys.executable, "-m", package], env


def start_pair(settings: Settings, stack: ExitStack, project: Path, database: str, loop: str) -> Pair:
    """The bake with its access log off, the bare app and the bake with its access log on, all on one fresh
    database holding item 1, checked to answer alike."""
    url = database_url(settings.work, stack, database, loop)
    command, env = service(project, url)
    label = f"baked-{database}-{loop}"
    baked = stack.enter_context(serving(label, pinned(settings, SERVER_CORE, command), env, settings.work))
    status, body = call(baked, "POST", "/items", {"name": "bench", "quantity": 1})
    if status != 201 or not isinstance(body, dict) or body.get("id") != 1:
        raise BenchmarkError(f"POST /items answered {status} {body!r}, expected 201 and id 1")
    command = pinned(settings, SERVER_CORE, [sys.executable, str(HERE / "bare_app.py"), loop])
    bare = stack.enter_context(serving(f"bare-{database}-{loop}", command, {"DATABASE_URL": url}, settings.work))
    command, env = service(project, url, access_log=True)
    label = f"log-on-{database}-{loop}"
    logged = stack.enter_context(serving(label, pinned(settings, SERVER_CORE, command), env, settings.work))
    ports = {"baked": baked, "bare": bare, "log on": logged}
    for path in PATHS:
        answers = {server: call(port, "GET", path) for server, port in ports.items()}
        if answers["baked"][0] != 200 or any(answer != answers["baked"] for answer in answers.values()):
            found = ", ".join(f"{server} {answer}" for server, answer in answers.items())
            raise BenchmarkError(f"{path}: the servers answer {found}; expected the same 200 from each")
    return Pair(database, loop, ports)


def start_versions(settings: Settings, stack: ExitStack, projects: dict[str, Path], database: str) -> list[Pair]:
    """The bake now, at the baseline and now with events off, each on a fresh database of its own: the paths at the
    settings' connections, and POST /items at FEW_WRITERS too when they differ."""
    ports = {}
    for version in VERSIONS:
        project = projects["now" if version == "events off" else version]
        url = database_url(settings.work, stack, database, f"{version.replace(' ', '-')}-{database}")
        command, env = service(project, url)
        command = pinned(settings, SERVER_CORE, command)
        ports[version] = stack.enter_context(serving(f"{version}-{database}", command, env, settings.work))
        if version == "events off":  # once the service has migrated its database
            drop_event_triggers(database, url)
    pairs = [Pair(database, "uvloop", ports, servers=VERSIONS, paths=VERSION_PATHS)]
    if settings.connections != FEW_WRITERS:
        pairs.append(Pair(database, "uvloop", ports, servers=VERSIONS, paths=("POST /items",), connections=FEW_WRITERS))
    return pairs


def drop_event_triggers(database: str, url: str) -> None:
    """Drop the triggers that record an event per write: the service runs as before, with no event to deliver."""
    for trigger in EVENT_TRIGGERS:
        if database == "sqlite":
            with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
                connection.execute(f"DROP TRIGGER {trigger}")
        else:
            postgres(f"DROP TRIGGER {trigger} ON items", url)


def wrk(settings: Settings, port: int, path: str, seconds: int, connections: int | None = None) -> Load:
    """Load one path (`POST /items`: create an item per request) for `seconds` with `connections` (by default the
    settings'); every response must be a 2xx."""
    [load] = wrk_at_once(settings, [port], path, seconds, connections)
    return load


def wrk_at_once(
    settings: Settings, ports: list[int], path: str, seconds: int, connections: int | None = None
) -> list[Load]:
    """Load one path of each server on `ports` at the same time, a wrk each, as `wrk` loads one."""
    method, _, path = path.rpartition(" ")
    script = str(HERE / ("wrk_post.lua" if method == "POST" else "wrk_report.lua"))
    connections = connections or settings.connections
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script]
    cpu_before = [live.cpu_seconds(PIDS[port]) for port in ports]
    urls = [f"http://{HOST}:{port}{path}" for port in ports]
    runs = [
        subprocess.Popen(pinned(settings, WRK_CORE, [*command, url]), stdout=PIPE, stderr=PIPE, text=True)
        for url in urls
    ]
    try:
        outputs = [run.communicate(timeout=seconds + 30) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    cpus = [live.cpu_seconds(PIDS[port]) - before for port, before in zip(ports, cpu_before, strict=True)]
    loads = []
    for url, run, (stdout, stderr), cpu in zip(urls, runs, outputs, cpus, strict=True):
        reports = [line for line in stdout.splitlines() if line.startswith("{")]
        if run.returncode != 0 or not reports:
            raise BenchmarkError(f"wrk exited {run.returncode} on {url}: {stderr or stdout}")
        report = json.loads(reports[-1])
        if not report["requests"] or any(report["errors"].values()):
            raise BenchmarkError(f"{url}: {report['requests']} requests, errors {report['errors']}")
        requests = report["requests"]
        rps = requests * 1e6 / report["duration_us"]
        loads.append(Load(rps, report["p50_us"] / 1e3, report["p99_us"] / 1e3, cpu * 1e6 / requests))
    return loads


def http_leg(settings: Settings, pairs: list[Pair], rounds: int, at_once: bool = False) -> None:
    """A warm-up, then per round, for each path of each pair, its servers back to back; round r starts with server
    r mod n and goes on in order, so none always goes first (with two servers, which goes first alternates).
    With `at_once`, each path's servers are then loaded once more, all at the same time."""
    if settings.warmup:
        for pair in pairs:
            for path in pair.paths:
                for server in pair.servers:
                    wrk(settings, pair.ports[server], path, 1, pair.connections)
    for round_ in range(rounds):
        for pair in pairs:
            first = round_ % len(pair.servers)
            order = pair.servers[first:] + pair.servers[:first]
            for path in pair.paths:
                for server in order:
                    load = wrk(settings, pair.ports[server], path, settings.seconds, pair.connections)
                    pair.loads[server, path].append(load)
                    show(settings, f"round {round_ + 1}/{rounds}", pair, server, path, load)
                if at_once:
                    ports = [pair.ports[server] for server in order]
                    loads = wrk_at_once(settings, ports, path, settings.seconds, pair.connections)
                    for server, load in zip(order, loads, strict=True):
                        pair.at_once[server, path].append(load)
                        show(settings, f"round {round_ + 1}/{rounds}", pair, f"{server}, at once", path, load)


def show(settings: Settings, when: str, pair: Pair, server: str, path: str, load: Load) -> None:
    """One wrk run's figures, as a line of progress."""
    print(
        f"  {when} {pair.database:<10} {pair.loop:<7} {server:<18} -c{pair.connections or settings.connections:<3} "
        f"{path:<11} {load.rps:>8,.0f} req/s  p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:7.2f} ms  "
        f"CPU {load.cpu_us:6.1f} us/request",
        flush=True,
    )


def live_leg(settings: Settings, project: Path, database: str) -> Live:
    """Latency to a subscriber on the same process, then on a second process on the same database; then
    fan-out rounds on the first process alone."""
    result = Live(database)
    warmup = 10 if settings.warmup else 0
    with ExitStack() as stack:
        command, env = service(project, database_url(settings.work, stack, database, f"live-{database}"))
        command = pinned(settings, SERVER_CORE, command)
        first = stack.enter_context(serving(f"live-{database}-a", command, env, settings.work))
        with serving(f"live-{database}-b", command, env, settings.work) as second:
            for where, port in (("same process", first), ("other process", second)):
                samples = uvloop.run(live.latency(first, port, settings.latency_samples, warmup))
                result.latency[where] = samples
                print(
                    f"  {database:<10} subscriber on the {where:<13} {len(samples.after_response)} samples: "
                    f"after the 201 p50 {percentile(samples.after_response, 50) * 1e3:6.2f} ms "
                    f"p99 {percentile(samples.after_response, 99) * 1e3:6.2f} ms",
                    flush=True,
                )
        for round_ in range(settings.fanout_rounds):
            burst = live.fanout(first, settings.subscribers, settings.burst, BURST_CONCURRENCY, PIDS[first])
            fanout = uvloop.run(burst)
            result.fanouts.append(fanout)
            print(
                f"  {database:<10} fan-out {round_ + 1}/{settings.fanout_rounds}: {fanout.events:,} events to "
                f"{fanout.subscribers} subscribers, {fanout.rate:>8,.0f} events/s delivered, "
                f"{fanout.events / fanout.posted_s:,.0f} POST/s, server CPU {fanout.server_us_per_frame:.1f} us/frame",
                flush=True,
            )
    return result


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


def instructions_span(page: str) -> slice | None:
    """Where instructions.py's section lies in a results.md, its markers included; None where it has none."""
    start, end = (page.find(marker) for marker in INSTRUCTIONS_SECTION)
    return slice(start, end + len(INSTRUCTIONS_SECTION[1])) if 0 <= start < end else None


def kept_instructions(results: Path) -> str:
    """instructions.py's section of the results.md about to be rewritten; a placeholder where there is none."""
    page = results.read_text(encoding="utf-8") if results.exists() else ""
    span = instructions_span(page)
    if span:
        return page[span]
    missing = "Not measured here: `python benchmarks/instructions.py --write` writes this section."
    return "\n".join([INSTRUCTIONS_SECTION[0], "## Instructions per request", "", missing, INSTRUCTIONS_SECTION[1]])


def markdown(title: str, settings: Settings, facts: dict[str, str], report: Report, instructions: str) -> str:
    """results.md; `instructions` is instructions.py's section, kept as it is."""
    pairs, suites = report.pairs, report.suites
    warmup = " after a 1 s warm-up per server and path" if settings.warmup else ""
    if settings.pin:
        cores = (
            f"Every server ran on core {SERVER_CORE} (`taskset -c {SERVER_CORE}`) and every wrk on core {WRK_CORE} "
            f"(`taskset -c {WRK_CORE}`); PostgreSQL and the live-event clients were not pinned and shared both cores"
        )
    else:
        cores = f"Nothing was pinned ({settings.unpinned}): the servers, wrk and PostgreSQL shared the machine's cores"
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{title}`. wrk -t1 -c{settings.connections} -d{settings.seconds}s on 127.0.0.1{warmup}, "
        f"{settings.rounds} round(s); every figure is the median of the rounds with (min-max). "
        f"{cores}. Compare figures within this run only.",
        "",
        "| Machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        "## Targets",
        "",
        "Each ratio is one server's req/s over another's on the same path, from runs taken back to back and "
        "computed round by round. *baked / bare*: the baked service (access log off) over the bare aiohttp app "
        "doing the same work, what the service's own code costs; *log on / baked*: the same bake with its access "
        "log on over it with the log off, what the access log costs. *By CPU time*: the same ratio taken from "
        "the servers' CPU time per request over the same runs (the other's over this one's). Each server keeps its "
        "core busy, so the two agree: a slow round is the same work taking more CPU time, not a server kept off its "
        "core. *At once*: the same ratio from one more run per round in which every server of the database is "
        "loaded at the same time, a wrk each, the servers sharing their core: a slow spell of the machine slows "
        "them all alike, so the ratio swings less from round to round, but the servers also share caches and "
        "the database, so it is a second view, not a truer one (on PostgreSQL's `/items/1` it measures who copes "
        "better with a shared, overloaded server). The floors are on the runs back to back, as the targets were "
        "first measured.",
        "",
        "| Target | Floor | Measured | Met | By CPU time | At once |",
        "|---|---|---|---|---|---|",
    ]
    for pair in pairs:
        for (server, against, path), floor in FLOORS.items():
            ratios = pair.ratios(path, server, against)
            met = "yes" if statistics.median(ratios) >= floor else "**NO**"
            label = f"{server} / {against}, {pair.database}, {pair.loop}, `{path}`"
            by_cpu = spread(pair.cpu_ratios(path, server, against), ".3f", "x")
            at_once = spread(pair.ratios(path, server, against, at_once=True), ".3f", "x")
            lines.append(f"| {label} | >= {floor:.2f}x | {spread(ratios, '.3f', 'x')} | {met} | {by_cpu} | {at_once} |")
    lines += [
        "",
        "## Throughput and latency",
        "",
        "| Database | Loop | Path | Server | req/s | p50 ms | p99 ms | CPU us per request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair in pairs:
        for path in pair.paths:
            for server in pair.servers:
                loads = pair.loads[server, path]
                figures = [spread([load.rps for load in loads], ",.0f")]
                figures += [
                    spread([load.p50_ms for load in loads], ".2f"),
                    spread([load.p99_ms for load in loads], ".2f"),
                    spread([load.cpu_us for load in loads], ".1f"),
                ]
                lines.append(f"| {pair.database} | {pair.loop} | `{path}` | {server} | {' | '.join(figures)} |")
    lines += ["", instructions]
    lines += versions_section(settings, report)
    lines += live_sections(settings, report.lives)
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


def versions_section(settings: Settings, report: Report) -> list[str]:
    """Leg 2's table, or why it was skipped."""
    lines = ["", "## Now vs the baseline", ""]
    if not report.versions:
        return [*lines, f"Skipped: {report.baseline}."]
    lines += [
        f"The template's working tree (now), commit `{report.baseline}` (the baseline, exported with `git archive`) "
        "and the working tree again with its events triggers dropped once it had migrated (events off: the same "
        "service, no event recorded), all baked with uvloop, each run as `python -m async_service` on a fresh "
        "database of its own and loaded back to back with the same wrk settings, which goes first rotating; "
        f"{settings.version_rounds} round(s), median (min-max). `POST /items` creates one item per request "
        f"(`wrk_post.lua`), also with {FEW_WRITERS} connections in a full run; the ratios are taken round by round.",
        "",
        "| Database | Request | wrk -c | baseline req/s | now req/s | events off req/s | now / baseline "
        "| now / events off | baseline p99 ms | now p99 ms | events off p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in report.versions:
        for path in pair.paths:
            loads = [pair.loads[version, path] for version in ("baseline", "now", "events off")]
            figures = [spread([load.rps for load in each], ",.0f") for each in loads]
            figures += [spread(pair.ratios(path, "now", against), ".2f", "x") for against in ("baseline", "events off")]
            figures += [spread([load.p99_ms for load in each], ".2f") for each in loads]
            connections = pair.connections or settings.connections
            lines.append(f"| {pair.database} | `{path}` | {connections} | {' | '.join(figures)} |")
    lines += [
        "",
        "The baseline records no events. Now, `POST /items` also writes its event, in the same statement: on "
        "SQLite the creates that wait for the connection share one INSERT; on PostgreSQL the event goes to an "
        "inbox with no lock, and is numbered after the commit (migration 0004), so writers do not wait for "
        "each other.",
    ]
    return lines


def live_sections(settings: Settings, lives: list[Live]) -> list[str]:
    """Leg 3's tables."""
    ms = 1e3
    lines = [
        "",
        "## Live events: commit-to-delivery latency",
        "",
        "One client process (`live.py`) holds a websocket on `GET /events` and sends `POST /items` to process A "
        "one at a time, each once the previous event has arrived and a random 5-105 ms gap has passed (so the "
        "POSTs fall anywhere in a 0.1 s poll); 10 warm-up samples are not kept. *After the 201*: the frame's "
        "arrival minus the 201's (negative when the event comes first); *after sending*: minus the moment the "
        "POST was sent. *Other process*: the subscriber is on process B, a second `python -m async_service` on "
        "the same database (SQLite: B polls for new events every 0.1 s; PostgreSQL: B LISTENs for the "
        "NOTIFY that number_events sends once it has numbered them).",
        "",
        "| Database | Subscriber on | Samples | after the 201: p50 ms | p99 ms | min ms "
        "| after sending: p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in lives:
        for where, samples in result.latency.items():
            figures = [str(len(samples.after_response))]
            figures += [f"{percentile(samples.after_response, rank) * ms:.2f}" for rank in (50, 99)]
            figures.append(f"{min(samples.after_response) * ms:.2f}")
            figures += [f"{percentile(samples.after_request, rank) * ms:.2f}" for rank in (50, 99)]
            lines.append(f"| {result.database} | {where} | {' | '.join(map(str, figures))} |")
    lines += [
        "",
        "## Live events: fan-out",
        "",
        f"{settings.subscribers} websockets on `GET /events` of one service process, each subscribed (it has "
        f"answered a ping from inside its subscription); a second client process sends {settings.burst:,} "
        f"`POST /items`, {BURST_CONCURRENCY} at a time, while the first receives and checks that every "
        "subscriber gets every event once, in order. *Delivered*: subscribers x events / (first POST sent to the "
        "last subscriber's last event). *Lag*: the last subscriber's last event after the last 201. *Server "
        "CPU*: the service process's CPU time (from /proc) over that window, per frame sent and as a share of "
        f"one core. {settings.fanout_rounds} round(s), median (min-max).",
        "",
        "| Database | Subscribers | Events per round | Delivered events/s | POST /items/s during the burst | Lag ms "
        "| Server CPU us per frame | Server CPU % of a core |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in lives:
        rounds = result.fanouts
        figures = [spread([fanout.rate for fanout in rounds], ",.0f")]
        figures.append(spread([fanout.events / fanout.posted_s for fanout in rounds], ",.0f"))
        figures.append(spread([fanout.drained_s * ms for fanout in rounds], ",.1f"))
        figures.append(spread([fanout.server_us_per_frame for fanout in rounds], ".1f"))
        figures.append(spread([fanout.server_busy * 100 for fanout in rounds], ".0f"))
        size = f"{settings.subscribers} | {settings.burst:,}"
        lines.append(f"| {result.database} | {size} | {' | '.join(figures)} |")
    return lines


def chart(pairs: list[Pair], path: Path) -> None:
    """results.png: median req/s of leg 1's three servers per database and path, min-max as error bars, and the
    median baked / bare ratio above each group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(pair, route) for pair in pairs for route in PATHS]
    figure, axes = plt.subplots(figsize=(max(7.0, 2.2 * len(groups)), 4.5))
    bars = (
        (-0.27, "baked", "baked service"),
        (0.0, "bare", "bare aiohttp, same query"),
        (0.27, "log on", "baked, access log on"),
    )
    for offset, server, label in bars:
        runs = [[load.rps for load in pair.loads[server, route]] for pair, route in groups]
        medians = [statistics.median(values) for values in runs]
        errors = [[m - min(v) for m, v in zip(medians, runs, strict=True)]]
        errors += [[max(v) - m for m, v in zip(medians, runs, strict=True)]]
        axes.bar([i + offset for i in range(len(groups))], medians, 0.27, yerr=errors, capsize=3, label=label)
    tops = [max(load.rps for server in SERVERS for load in pair.loads[server, route]) for pair, route in groups]
    for i, ((pair, route), top) in enumerate(zip(groups, tops, strict=True)):
        ratio = statistics.median(pair.ratios(route, "baked", "bare"))
        axes.annotate(f"{ratio:.2f}x", (i, top), ha="center", va="bottom")
    axes.set_ylim(0, max(tops) * 1.3)
    axes.set_xticks(range(len(groups)), [f"{pair.database}, {pair.loop}\n{route}" for pair, route in groups])
    axes.set_ylabel("requests per second (median of the rounds)")
    axes.set_title("Baked service vs bare aiohttp doing the same work (baked / bare above)")
    axes.legend(loc="upper left", ncols=3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> int:
    """Run the four legs and write the results; 1 when something is missing or fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, wrk -c10 -d1s, a few tests: a smoke run")
    parser.add_argument("--rounds", type=int, help="leg 1's wrk rounds and suite runs (default 5; 1 with --quick)")
    parser.add_argument("--loops", nargs="+", choices=("uvloop", "asyncio"), default=["uvloop"], help="event loops")
    parser.add_argument("--baseline", default=BASELINE, help=f"the commit leg 2 compares with (default {BASELINE})")
    parser.add_argument("--output", type=Path, default=HERE, help="folder for results.md and results.png")
    parser.add_argument(
        "--no-pin", action="store_true", help="run the servers and wrk on any core (default: taskset, 0 and 1)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 1
    loads = [f"{load_average()} at the start"]
    postgresql = postgres_version()
    if postgresql is None:
        if not args.quick:
            print(f"no PostgreSQL answers at TEST_DATABASE_URL={ADMIN_URL}: start one, or use --quick", file=sys.stderr)
            return 1
        print(f"PostgreSQL skipped: nothing answers at TEST_DATABASE_URL={ADMIN_URL}", file=sys.stderr)
    databases = ["sqlite", "postgresql"] if postgresql else ["sqlite"]
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        settings = Settings(
            rounds=args.rounds or (1 if args.quick else 5),
            seconds=1 if args.quick else 5,
            connections=10 if args.quick else 50,
            warmup=not args.quick,
            suite_args=("-k", "health") if args.quick else (),
            work=Path(work),
            unpinned=why_unpinned(args.no_pin),
            **(
                {"version_rounds": 1, "latency_samples": 20, "subscribers": 5, "burst": 50, "fanout_rounds": 1}
                if args.quick
                else {}
            ),
        )
        if settings.pin:
            print(f"servers pinned to core {SERVER_CORE}, wrk to core {WRK_CORE} (taskset)", flush=True)
        else:
            print(f"nothing pinned: {settings.unpinned}", flush=True)
        try:
            loops = dict.fromkeys([*args.loops, "uvloop"])  # legs 2-4 use the uvloop bakes
            bakes = {(loop, db): bake(settings.work, loop, db) for loop in loops for db in databases}
            template = baseline_template(settings.work, args.baseline)
            if isinstance(template, str):
                print(f"leg 2 skipped: {template}", file=sys.stderr)
                baselines = {}
            else:
                baselines = {db: bake(settings.work, "uvloop", db, template, "baseline") for db in databases}
            print("== leg 1: baked service vs bare aiohttp", flush=True)
            with ExitStack() as stack:
                pairs = [start_pair(settings, stack, bakes[lp, db], db, lp) for db in databases for lp in args.loops]
                http_leg(settings, pairs, settings.rounds, at_once=True)
            versions = []
            if baselines:
                print(f"== leg 2: now vs the baseline {args.baseline}", flush=True)
                loads.append(f"{load_average()} at leg 2")
                with ExitStack() as stack:
                    for db in databases:
                        projects = {"now": bakes["uvloop", db], "baseline": baselines[db]}
                        versions += start_versions(settings, stack, projects, db)
                    http_leg(settings, versions, settings.version_rounds)
            print("== leg 3: live events", flush=True)
            loads.append(f"{load_average()} at leg 3")
            lives = [live_leg(settings, bakes["uvloop", db], db) for db in databases]
            print("== leg 4: the baked test suite", flush=True)
            loads.append(f"{load_average()} at leg 4")
            suites = [suite_leg(settings, bakes["uvloop", db], db) for db in databases]
        except (BenchmarkError, live.LiveError, subprocess.SubprocessError, asyncpg.PostgresError) as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
        except (aiohttp.ClientError, TimeoutError) as error:
            print(f"benchmark failed: live events: {error!r}", file=sys.stderr)
            return 1
    facts = machine(postgresql or f"skipped: nothing answers at TEST_DATABASE_URL={ADMIN_URL}")
    loads.append(f"{load_average()} at the end")
    facts["Load average"] = f"{', '.join(loads)} (1 / 5 / 15 min)"
    command = " ".join(["python benchmarks/run.py", *sys.argv[1:]])
    baseline = args.baseline if baselines else str(template)
    report = Report(pairs, versions, baseline, lives, suites)
    page = markdown(command, settings, facts, report, kept_instructions(args.output / "results.md"))
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
