"""The load generator: wrk, driven with a Lua `done` hook that prints one JSON line per run."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_MISSING = "wrk not found: install it with 'apt-get install -y wrk'"
REPORT_SCRIPT = Path(__file__).with_name("wrk_report.lua")


class LoadError(RuntimeError):
    """wrk failed, or the server answered with errors or non-2xx statuses."""


@dataclass(frozen=True)
class Load:
    """One wrk run: throughput and latency percentiles."""

    rps: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long each wrk run pushes."""

    threads: int = 1
    connections: int = 50
    seconds: int = 5


def find_wrk() -> str | None:
    """The wrk executable on PATH, or None."""
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    """wrk's version as it prints it, e.g. `4.1.0`."""
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    words = (done.stdout + done.stderr).split()
    return words[1].removeprefix("debian/") if len(words) > 1 else "unknown"


def run_wrk(wrk: str, url: str, settings: LoadSettings) -> Load:
    """Load `url` for `settings.seconds`; raise LoadError unless every response was a 2xx."""
    command = [
        wrk,
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{settings.seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(REPORT_SCRIPT),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=settings.seconds + 30, check=False)
    if done.returncode != 0:
        raise LoadError(f"wrk exited {done.returncode} on {url}: {done.stderr.strip() or done.stdout.strip()}")
    return parse_report(url, done.stdout)


def parse_report(url: str, output: str) -> Load:
    """The Load in wrk's output (the last line, printed by wrk_report.lua)."""
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if not lines:
        raise LoadError(f"wrk printed no report for {url}:\n{output}")
    report = json.loads(lines[-1])
    failures = {key: report[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")}
    if report["requests"] == 0 or any(failures.values()):
        raise LoadError(f"{url}: {report['requests']} requests, failures {failures}")
    seconds = report["duration_us"] / 1e6
    return Load(rps=report["requests"] / seconds, p50_ms=report["p50_us"] / 1e3, p99_ms=report["p99_us"] / 1e3)
