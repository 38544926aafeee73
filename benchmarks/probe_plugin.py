"""A pytest plugin for the isolation probe: tests interleaved; each one's setup + call + teardown time, to JSON.

Loaded with `-p probe_plugin` (benchmarks/ on PYTHONPATH); the file is named by BENCH_PROBE_OUTPUT.
pytest's own reports round to the millisecond or worse, too coarse for a rollback.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

_durations: defaultdict[str, float] = defaultdict(float)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Interleave the groups (isolated[0], async_fixture[0], shared[0], isolated[1], ...) so drift hits all alike."""
    items.sort(key=_round)


def _round(item: pytest.Item) -> int:
    """The probe test's parameter `n`: tests of one round share it."""
    n = item.callspec.params.get("n") if isinstance(item, pytest.Function) and hasattr(item, "callspec") else None
    return n if isinstance(n, int) else -1


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up the three phases of each test."""
    _durations[report.nodeid] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write {node id: seconds} where BENCH_PROBE_OUTPUT says."""
    target = os.environ.get("BENCH_PROBE_OUTPUT")
    if target:
        with open(target, "w", encoding="utf-8") as file:
            json.dump(dict(_durations), file)
