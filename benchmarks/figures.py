"""What a benchmark run measured: samples per figure, summarised as median with min and max."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from loadgen import Load


@dataclass(frozen=True)
class Spread:
    """Several runs of one figure."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def cell(self, digits: int = 0, suffix: str = "") -> str:
        """`median (min-max)` for a table cell; just the median for a single run."""
        median = f"{self.median:,.{digits}f}{suffix}"
        if len(self.values) == 1:
            return median
        return f"{median} ({self.low:,.{digits}f}-{self.high:,.{digits}f})"


@dataclass
class Throughput:
    """wrk runs against one path of one server, one per round."""

    leg: int
    server: str
    loop: str
    path: str
    loads: list[Load] = field(default_factory=list)

    @property
    def rps(self) -> Spread:
        return Spread(tuple(load.rps for load in self.loads))

    @property
    def p50(self) -> Spread:
        return Spread(tuple(load.p50_ms for load in self.loads))

    @property
    def p99(self) -> Spread:
        return Spread(tuple(load.p99_ms for load in self.loads))


@dataclass(frozen=True)
class Ratio:
    """Throughput of one server over another's, round by round; `target` is the floor the median must reach."""

    label: str
    spread: Spread
    target: float | None = None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.spread.median >= self.target


@dataclass(frozen=True)
class Timing:
    """Wall times (or a per-test cost) of one command over several runs."""

    leg: int
    label: str
    unit: str
    spread: Spread
    note: str = ""


@dataclass
class Results:
    """Everything one run of run.py reports."""

    machine: dict[str, str]
    settings: str
    throughputs: list[Throughput] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def ratio(label: str, top: Throughput, bottom: Throughput, target: float | None = None) -> Ratio:
    """`top`'s req/s over `bottom`'s, per round (the two were measured back to back in each round)."""
    values = tuple(a.rps / b.rps for a, b in zip(top.loads, bottom.loads, strict=True))
    return Ratio(label, Spread(values), target)
