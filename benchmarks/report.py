"""Writing the results: the machine they were measured on, a Markdown table, a PNG chart."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from figures import Results, Spread, Throughput, Timing

LIBRARIES = [
    "aiohttp",
    "uvloop",
    "aiosqlite",
    "asyncpg",
    "fastapi",
    "uvicorn",
    "httptools",
    "gunicorn",
    "pytest",
    "pytest-asyncio",
    "pytest-aiohttp",
    "cookiecutter",
]
LEGS = {
    1: "baked service vs bare aiohttp",
    2: "FastAPI + uvicorn reference",
    3: "gunicorn workers",
    4: "generated test suite",
    5: "template",
}


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def os_name() -> str:
    """The distribution and kernel, e.g. `Debian GNU/Linux 12 (bookworm), Linux 6.1`."""
    try:
        distribution = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        distribution = ""
    kernel = f"{platform.system()} {platform.release()}"
    return f"{distribution}, {kernel}" if distribution else kernel


def versions() -> str:
    """`name version` of each library the figures depend on that this environment has."""
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def machine_info(wrk: str, postgresql: str) -> dict[str, str]:
    """The facts a reader needs to compare these figures with their own."""
    return {
        "Date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{cpu_model()}, {os.cpu_count()} cores",
        "OS": os_name(),
        "Python": platform.python_version(),
        "wrk": wrk,
        "PostgreSQL": postgresql,
        "Libraries": versions(),
        "Load average": f"{load_average()} at the start",
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: anything else busy on the machine skews every figure."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def markdown(results: Results, chart: str | None) -> str:
    """The whole results page."""
    parts = [
        "# Benchmark results\n",
        f"{results.settings}\n",
        _machine_table(results.machine),
        _targets_table(results),
        _throughput_table(results.throughputs),
        _ratio_table(results),
        _timing_table(results.timings),
    ]
    if results.skipped:
        parts.append("## Skipped\n\n" + "".join(f"- {line}\n" for line in results.skipped))
    if chart:
        parts.append(f"![Benchmark chart]({chart})\n")
    return "\n".join(part for part in parts if part)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _machine_table(machine: dict[str, str]) -> str:
    return "## Machine\n\n" + _table(["", ""], [[f"**{key}**", value] for key, value in machine.items()])


def _targets_table(results: Results) -> str:
    rows = [
        [ratio.label, f">= {ratio.target:.2f}x", ratio.spread.cell(2, "x"), "yes" if ratio.met else "**NO**"]
        for ratio in results.ratios
        if ratio.target is not None
    ]
    if not rows:
        return ""
    return "## Targets\n\n" + _table(["Target", "Floor", "Measured: median (min-max)", "Met"], rows)


def _throughput_table(throughputs: list[Throughput]) -> str:
    if not throughputs:
        return ""
    header = ["Leg", "Server", "Loop", "Path", "req/s", "p50 ms", "p99 ms"]
    rows = [
        [str(t.leg), t.server, t.loop, f"`{t.path}`", t.rps.cell(0), t.p50.cell(2), t.p99.cell(2)] for t in throughputs
    ]
    intro = "## Throughput and latency (legs 1-3)\n\nEach cell: median of the runs (min-max).\n\n"
    return intro + _table(header, rows)


def _ratio_table(results: Results) -> str:
    rows = [[ratio.label, ratio.spread.cell(2, "x")] for ratio in results.ratios]
    if not rows:
        return ""
    intro = "## Ratios\n\nComputed round by round (both sides measured back to back), then summarised.\n\n"
    return intro + _table(["Ratio of req/s", "median (min-max)"], rows)


def _timing_table(timings: list[Timing]) -> str:
    if not timings:
        return ""
    rows = [
        [
            str(t.leg),
            t.label,
            t.spread.cell(3 if t.unit == "ms" else 2, f" {t.unit}"),
            str(len(t.spread.values)),
            t.note,
        ]
        for t in timings
    ]
    intro = "## Times (legs 4-5)\n\n"
    return intro + _table(["Leg", "What", "median (min-max)", "Runs", "Note"], rows)


SERVER_COLOURS = {"baked": "tab:blue", "bare": "tab:gray", "FastAPI": "tab:orange", "gunicorn": "tab:green"}


def write_chart(results: Results, path: Path) -> None:
    """A 2x2 PNG: req/s of each path, the wall times, the per-test isolation cost."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(2, 2, figsize=(15, 10))
    for axis, path_name in zip(axes[0], ("/health", "/items/1"), strict=True):
        _throughput_bars(axis, [t for t in results.throughputs if t.path == path_name], path_name)
    walls = [t for t in results.timings if t.unit == "s" and "minus" not in t.label]
    _timing_bars(axes[1][0], walls, "Wall time, s (log scale)", log=True)
    costs = [t for t in results.timings if t.unit == "ms"]
    _timing_bars(axes[1][1], costs, "Database isolation, ms per test", log=False)
    machine = results.machine
    figure.suptitle(f"{machine['CPU']}, {machine['OS']}, Python {machine['Python']}, {machine['Date']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _throughput_bars(axis: Any, throughputs: list[Throughput], path: str) -> None:
    labels = [f"{t.server} ({t.loop})" for t in throughputs]
    colours = [next(c for key, c in SERVER_COLOURS.items() if t.server.startswith(key)) for t in throughputs]
    _bars(axis, labels, [t.rps for t in throughputs], colours, "{:,.0f}")
    axis.set_title(f"GET {path}: requests per second (median, min-max)")


def _timing_bars(axis: Any, timings: list[Timing], title: str, *, log: bool) -> None:
    labels = [t.label.split(" (tests/")[0] for t in timings]
    _bars(axis, labels, [t.spread for t in timings], ["tab:purple"] * len(timings), "{:,.2f}")
    if log and timings:
        axis.set_xscale("log")
    axis.set_title(title)


def _bars(axis: Any, labels: list[str], spreads: list[Spread], colours: list[str], number: str) -> None:
    medians = [spread.median for spread in spreads]
    below = [median - spread.low for median, spread in zip(medians, spreads, strict=True)]
    above = [spread.high - median for median, spread in zip(medians, spreads, strict=True)]
    positions = list(range(len(labels)))
    axis.barh(positions, medians, xerr=[below, above], color=colours, ecolor="black", capsize=3)
    axis.set_yticks(positions, labels, fontsize=8)
    axis.invert_yaxis()
    axis.margins(x=0.15)
    for position, median in zip(positions, medians, strict=True):
        axis.annotate(number.format(median), (median, position), xytext=(4, -8), textcoords="offset points", fontsize=8)
