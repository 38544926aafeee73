"""The instruction-count gate: what the baked service's own code costs per request against the bare app doing the
same work, counted by valgrind's callgrind, so that neither a busy machine nor a quiet one moves the figures.

    python benchmarks/instructions.py              # 3 runs of 100 requests per path; about 5 minutes on 2 cores
    python benchmarks/instructions.py --short      # 1 run: the gate `nox -s instructions` runs, under 2 minutes
    python benchmarks/instructions.py --write      # also rewrite the "Instructions per request" section of results.md
    python benchmarks/instructions.py --set-budget # also set the ceilings in budget.json: each ratio plus MARGIN

The template is baked with database sqlite and postgresql (event_loop uvloop). For each database, each of three
servers runs under callgrind on a fresh database of its own holding item 1: the bake with ACCESS_LOG=off, the bake
with the access log on, and bare_app.py. This process is the client, outside valgrind: one keep-alive connection,
one request at a time, each sent once every thread of the server is asleep again. Per path, after a warm-up, the
server's counters are zeroed, the requests are sent, and the instructions of all its threads are read; what it runs
per second while idle (timers, SQLite's poll for other processes' events) is measured once and taken off in
proportion to the window's wall time, which valgrind and a busy machine stretch. Each ratio (baked / bare, and
baked with its log on / bare) must stay at or under its ceiling in budget.json; the exit code is 1 when one does
not, naming it. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from run import (
    ADMIN_URL,
    HERE,
    HOST,
    INSTRUCTIONS_SECTION,
    PIDS,
    BenchmarkError,
    bake,
    call,
    database_url,
    instructions_span,
    postgres_version,
    service,
    serving,
)

BUDGET = HERE / "budget.json"
RESULTS = HERE / "results.md"
DATABASES = ("sqlite", "postgresql")
PATHS = ("GET /health", "GET /items/1", "POST /items")
BARE = "bare"
SERVERS = (BARE, "baked", "baked, log on")
ITEM = {"name": "bench", "quantity": 1}
MARGIN = 0.03  # --set-budget: each ceiling is the ratio measured plus this share of it
RUNS = 3  # of each server (1 with --short)
COUNT = 100  # requests per path and run
WARMUP = 50  # requests per path before the counting starts (not counted, instrumentation off: fast)
SETTLE_SECONDS = 1.0  # between the warm-up and counting the idle instructions
IDLE_SECONDS = 3.0  # how long each server's idle instructions are counted
STARTUP = 180.0  # seconds a server may take to come up under valgrind on a busy machine
QUIET_TIMEOUT = 30.0  # seconds a server may stay busy after answering
VALGRIND_MISSING = "valgrind not found: install it with 'apt-get install -y valgrind'"


@dataclass(frozen=True)
class Server:
    """A server running under callgrind."""

    label: str
    port: int
    pid: int
    vgdb_prefix: Path


@dataclass(frozen=True)
class Row:
    """Instructions per request of each server on one path of one database, run by run."""

    database: str
    path: str
    runs: dict[str, list[float]]

    def median(self, server: str) -> float:
        """The server's median over the runs."""
        return statistics.median(self.runs[server])

    def ratio(self, server: str) -> float:
        """The server's median over the bare app's."""
        return self.median(server) / self.median(BARE)

    def spread(self) -> str:
        """The largest (max - min) / median over the runs of any server; `-` after one run."""
        if len(self.runs[BARE]) < 2:
            return "-"
        return f"{max((max(runs) - min(runs)) / statistics.median(runs) for runs in self.runs.values()):.2%}"


@dataclass
class Budget:
    """budget.json: the ceiling of each ratio, the margin they were set with and the Python they were measured on."""

    ceilings: dict[str, float] = field(default_factory=dict)
    margin: float = MARGIN
    python: str | None = None

    @classmethod
    def read(cls, path: Path) -> Budget:
        """The budget in the file; an empty one where there is none."""
        return cls(**json.loads(path.read_text(encoding="utf-8"))) if path.exists() else cls()

    def write(self, path: Path) -> None:
        """Save it."""
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    def set(self, rows: list[Row]) -> None:
        """Set the ceiling of each ratio measured to the ratio plus MARGIN; the others stay."""
        for row in rows:
            for server in SERVERS[1:]:
                self.ceilings[budget_key(row.database, row.path, server)] = round(row.ratio(server) * (1 + MARGIN), 3)
        self.margin, self.python = MARGIN, python_version()


def budget_key(database: str, path: str, server: str) -> str:
    """How budget.json names a ratio: `sqlite GET /health baked, log on`."""
    return f"{database} {path} {server}"


def callgrind_control(server: Server, *args: str) -> str:
    """Run callgrind_control on the server; its output."""
    command = ["callgrind_control", f"--vgdb-prefix={server.vgdb_prefix}", *args, str(server.pid)]
    # vgdb finds the server's pipes by the name of its host, which valgrind takes from HOST: the server's.
    env = {**os.environ, "HOST": HOST}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    complaints = [line for line in done.stderr.splitlines() if not line.startswith("sending command")]
    if done.returncode != 0 or complaints or "Error" in done.stdout:
        said = " ".join([*done.stdout.split(), *complaints])
        raise BenchmarkError(f"callgrind_control {' '.join(args)} failed on {server.label}: {said}")
    return done.stdout


def instructions(server: Server) -> int:
    """The instructions the server ran, every thread, since its counters were last zeroed."""
    shown = callgrind_control(server, "-e", "Ir")
    if "Totals:" not in shown:
        raise BenchmarkError(f"callgrind_control showed no counts for {server.label}: {' '.join(shown.split())}")
    # One line per thread that ran since (none when none did): `Th 1  19,721,588`.
    counts = re.findall(r"^\s*Th\s+\d+\s+([\d,]+)\s*$", shown, re.MULTILINE)
    return sum(int(count.replace(",", "")) for count in counts)


@contextmanager
def counted(label: str, command: list[str], env: dict[str, str], work: Path) -> Iterator[Server]:
    """Start the server under callgrind, instrumentation off until `measure` turns it on; stop it on the way out."""
    name = re.sub(r"[^\w-]", "", label)  # outside the f-string: a backslash in one is Python 3.12's, not 3.11's
    prefix = work / f"vgdb-{name}"
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",  # start-up and warm-up run several times faster uninstrumented
        f"--vgdb-prefix={prefix}",
        f"--callgrind-out-file={prefix}.out",
    ]
    environment = {**env, "PYTHONHASHSEED": "0"}
    with serving(label, [*valgrind, *command], environment, work, STARTUP) as port:
        yield Server(label, port, PIDS[port], prefix)


def thread_states(pid: int) -> list[str]:
    """The state letter of each thread of the process (R running, S asleep, D in uninterruptible I/O, ...)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended
            continue
        states.append(stat[stat.rindex(")") + 2])  # the field after the command name, which may hold spaces
    return states


def quiet(server: Server) -> None:
    """Return once every thread of the server has been asleep at two looks a millisecond apart.

    The work a request leaves behind (the hub reading the event a POST wrote) is then done before the next
    request comes, and each request finds the server idle: what gets batched with what does not depend on timing.
    """
    deadline = time.monotonic() + QUIET_TIMEOUT
    asleep = 0
    while asleep < 2:
        asleep = asleep + 1 if all(state == "S" for state in thread_states(server.pid)) else 0
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{server.label} did not go quiet within {QUIET_TIMEOUT:g} s")
        time.sleep(0.001)


class Client:
    """One keep-alive connection, one request at a time, each checked to succeed and followed by `quiet`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connection = http.client.HTTPConnection(HOST, server.port, timeout=QUIET_TIMEOUT)

    def send(self, path: str, count: int) -> None:
        """Send `count` requests on a path like `POST /items`."""
        method, target = path.split(" ")
        body = json.dumps(ITEM) if method == "POST" else None
        headers = {"Content-Type": "application/json"} if body else {}
        expected = 201 if method == "POST" else 200
        for _ in range(count):
            self.connection.request(method, target, body, headers)
            response = self.connection.getresponse()
            response.read()
            if response.status != expected:
                raise BenchmarkError(f"{self.server.label}: {path} answered {response.status}, expected {expected}")
            quiet(self.server)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def idle_rate(server: Server) -> float:
    """Instructions per second the server runs while no request comes."""
    time.sleep(SETTLE_SECONDS)
    callgrind_control(server, "-z")
    started = time.monotonic()
    time.sleep(IDLE_SECONDS)
    return instructions(server) / (time.monotonic() - started)


def per_request(server: Server, client: Client, path: str, count: int, idle: float) -> float:
    """Instructions per request over `count` requests on this path, the idle rate's share of the time taken off."""
    callgrind_control(server, "-z")
    started = time.monotonic()
    client.send(path, count)
    total = instructions(server)
    return (total - idle * (time.monotonic() - started)) / count


def measure(server: Server, paths: list[str], count: int) -> dict[str, float]:
    """Instructions per request on each path, after a warm-up."""
    client = Client(server)
    try:
        for path in paths:
            client.send(path, WARMUP)
        callgrind_control(server, "-i", "on")
        idle = idle_rate(server)
        return {path: per_request(server, client, path, count, idle) for path in paths}
    finally:
        client.close()


def prepare(project: Path, url: str, work: Path, label: str) -> None:
    """Migrate the database with the bake (not under valgrind) and create item 1."""
    command, env = service(project, url)
    with serving(f"{label}-prepare", command, env, work) as port:
        status, body = call(port, "POST", "/items", ITEM)
    if status != 201 or not isinstance(body, dict) or body.get("id") != 1:
        raise BenchmarkError(f"POST /items answered {status} {body!r}, expected 201 and id 1")


def server_command(project: Path, url: str, server: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one of SERVERS on the database at `url`."""
    if server == BARE:
        return [sys.executable, str(HERE / "bare_app.py"), "uvloop"], {"DATABASE_URL": url}
    command, env = service(project, url)
    return command, {**env, "ACCESS_LOG": "on" if server == "baked, log on" else "off"}


def first_answers(port: int) -> list[tuple[int, object]]:
    """What a server on a fresh database holding item 1 answers first: every server must answer the same."""
    return [call(port, "GET", "/health"), call(port, "GET", "/items/1"), call(port, "POST", "/items", ITEM)]


def run_once(
    project: Path, database: str, work: Path, paths: list[str], count: int, number: int
) -> dict[str, dict[str, float]]:
    """Each server on a fresh database of its own: server -> path -> instructions per request."""
    figures: dict[str, dict[str, float]] = {}
    expected: list[tuple[int, object]] = []
    for server in SERVERS:
        label = f"{database}-{server}-{number}"
        with ExitStack() as stack:
            url = database_url(work, stack, database, re.sub(r"\W", "", label))
            prepare(project, url, work, label)
            command, env = server_command(project, url, server)
            running = stack.enter_context(counted(label, command, env, work))
            answers = first_answers(running.port)
            if expected and answers != expected:
                raise BenchmarkError(f"{label} answers {answers}, the bare app {expected}")
            expected = answers
            figures[server] = measure(running, paths, count)
        for path, figure in figures[server].items():
            print(f"  run {number} {database:<10} {path:<13} {server:<13} {figure:>12,.0f}", flush=True)
    return figures


def measure_database(project: Path, database: str, work: Path, paths: list[str], runs: int, count: int) -> list[Row]:
    """Every path of every server on one database, `runs` times."""
    measured = [run_once(project, database, work, paths, count, number + 1) for number in range(runs)]
    return [Row(database, path, {s: [run[s][path] for run in measured] for s in SERVERS}) for path in paths]


def database_of(project: Path) -> str | None:
    """The database a bake was baked with; None for database=none."""
    [package] = [path for path in (project / "src").iterdir() if path.is_dir()]
    return next((database for database in DATABASES if (package / f"store_{database}.py").exists()), None)


def over_budget(rows: list[Row], budget: Budget) -> list[str]:
    """A line for each ratio over its ceiling, or with none."""
    ceilings, lines = budget.ceilings, []
    for row in rows:
        for server in SERVERS[1:]:
            key = budget_key(row.database, row.path, server)
            figures = f"{row.median(server):,.0f} against {row.median(BARE):,.0f} instructions per request"
            if key not in ceilings:
                lines.append(f"no budget for {key}: {row.ratio(server):.3f}x ({figures}); set one with --set-budget")
            elif row.ratio(server) > ceilings[key]:
                lines.append(f"over budget: {key}: {row.ratio(server):.3f}x > {ceilings[key]:.3f}x ({figures})")
    return lines


def python_version() -> str:
    """The Python the figures depend on: `3.13`."""
    return ".".join(platform.python_version_tuple()[:2])


def section(rows: list[Row], budget: Budget, runs: int, count: int) -> str:
    """The "Instructions per request" section of results.md, between its markers."""
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    command = " ".join(["python benchmarks/instructions.py", *sys.argv[1:]])
    lines = [
        INSTRUCTIONS_SECTION[0],
        "## Instructions per request",
        "",
        f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python "
        f"{platform.python_version()}, {valgrind}: each server under callgrind on a fresh database holding item 1, "
        f"{runs} run(s) of {count} requests per path, one at a time once the server is quiet again, after a warm-up; "
        "the instructions of all the server's threads per request, its idle rate taken off; median of the runs. "
        "The ratio is the baked service's over the bare app's, the same driver and query: 1.00x would be free, and "
        "each must stay at or under its ceiling (`budget.json`: the ratio measured plus "
        f"{budget.margin:.0%}). *Spread*: the largest (max - min) / median of the row's figures over the runs.",
        "",
        "| Database | Request | bare | baked | baked / bare | ceiling | baked, log on | log on / bare | ceiling "
        "| spread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        figures = [f"{row.database} | `{row.path}`", f"{row.median(BARE):,.0f}"]
        for server in SERVERS[1:]:
            ceiling = budget.ceilings.get(budget_key(row.database, row.path, server))
            figures += [f"{row.median(server):,.0f}", f"{row.ratio(server):.3f}x"]
            figures.append(f"{ceiling:.3f}x" if ceiling else "none")
        figures.append(row.spread())
        lines.append(f"| {' | '.join(figures)} |")
    return "\n".join([*lines, INSTRUCTIONS_SECTION[1]])


def write_section(path: Path, text: str) -> None:
    """Put the section in place of the one in results.md, or at its end."""
    page = path.read_text(encoding="utf-8") if path.exists() else ""
    span = instructions_span(page)
    page = page[: span.start] + text + page[span.stop :] if span else f"{page.rstrip()}\n\n{text}\n".lstrip()
    path.write_text(page, encoding="utf-8")


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="1 run instead of RUNS: the CI gate")
    parser.add_argument("--runs", type=int, help=f"runs of each server (default {RUNS}; 1 with --short)")
    parser.add_argument("--count", type=int, default=COUNT, help=f"requests per path and run (default {COUNT})")
    parser.add_argument("--databases", nargs="+", choices=DATABASES, default=list(DATABASES))
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--project", type=Path, help="measure this bake (its database only) instead of baking")
    parser.add_argument("--budget", type=Path, default=BUDGET, help="the ceilings (default benchmarks/budget.json)")
    parser.add_argument("--set-budget", action="store_true", help="set the measured ratios' ceilings in --budget")
    parser.add_argument("--write", action="store_true", help="rewrite the section of --results")
    parser.add_argument("--results", type=Path, default=RESULTS, help="default benchmarks/results.md")
    return parser.parse_args()


def main() -> int:
    """Measure, compare with the budget, write what was asked; 1 when a ratio is over budget or something fails."""
    args = arguments()
    runs, count = args.runs or (1 if args.short else RUNS), args.count
    databases: list[str] = args.databases
    if args.project:
        database = database_of(args.project)
        if database is None:
            print(f"{args.project} keeps its items in memory: no database to share with the bare app", file=sys.stderr)
            return 1
        databases = [database]
    if shutil.which("valgrind") is None:
        print(VALGRIND_MISSING, file=sys.stderr)
        return 1
    if "postgresql" in databases and postgres_version() is None:
        print(
            f"no PostgreSQL answers at TEST_DATABASE_URL={ADMIN_URL}: start one, or use --databases sqlite",
            file=sys.stderr,
        )
        return 1
    with tempfile.TemporaryDirectory(prefix="instructions-") as folder:
        work = Path(folder)
        try:
            rows = []
            for database in databases:
                project = args.project or bake(work, "uvloop", database)
                rows += measure_database(project, database, work, args.paths, runs, count)
        except (BenchmarkError, subprocess.SubprocessError, asyncpg.PostgresError, OSError) as error:
            print(f"instruction count failed: {error}", file=sys.stderr)
            return 1
    budget = Budget.read(args.budget)
    if args.set_budget:
        budget.set(rows)
        budget.write(args.budget)
    text = section(rows, budget, runs, count)
    print(text.split("\n", 1)[1].rsplit("\n", 1)[0])
    if args.write:
        write_section(args.results, text)
        print(f"wrote {args.results}")
    if budget.python not in (None, python_version()):
        print(f"note: the budget was set on Python {budget.python}; this is {python_version()}", file=sys.stderr)
    complaints = over_budget(rows, budget)
    for line in complaints:
        print(line, file=sys.stderr)
    return 1 if complaints else 0


if __name__ == "__main__":
    sys.exit(main())
