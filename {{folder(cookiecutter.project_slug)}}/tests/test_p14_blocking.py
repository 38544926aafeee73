"""P14 - blocking work kept off the loop, and caught when it is not.

CPU work runs in a thread (`asyncio.to_thread`, or `loop.run_in_executor`)
so the loop keeps serving, as a ticker task on it shows; the autouse
`blockbuster` fixture (conftest.py) makes a blocking call on the loop raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from blockbuster import BlockingError

from {{ cookiecutter.package_name }} import fingerprint as fingerprint_module
from {{ cookiecutter.package_name }}.fingerprint import fingerprint
from {{ cookiecutter.package_name }}.items import Item

from .support.clients import Client


@contextlib.asynccontextmanager
async def loop_watch() -> AsyncIterator[list[float]]:
    """A ticker wakes every millisecond on the loop while the block runs; at exit, gives its wake-up gaps (their
    sum is the block's duration, so one gap near it means the loop was held nearly all that time)."""
    wakeups = [time.perf_counter()]
    gaps: list[float] = []

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.001)
            wakeups.append(time.perf_counter())

    ticker = asyncio.create_task(tick())
    try:
        yield gaps
    finally:
        wakeups.append(time.perf_counter())  # a stall just before the end counts too
        ticker.cancel()
        await asyncio.wait({ticker})
        gaps.extend(later - earlier for earlier, later in itertools.pairwise(wakeups))


@pytest.fixture
def slow_fingerprints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Function scope: fingerprints take ~0.07 s (twice the service's), far above the loop's jitter."""
    monkeypatch.setattr(fingerprint_module, "ITERATIONS", 200_000)


@pytest.mark.usefixtures("slow_fingerprints")
async def test_loop_keeps_ticking_while_the_handler_fingerprints(client: Client) -> None:
    created = await (await client.post("/items", json={"name": "anvil", "quantity": 1})).json()

    async with loop_watch() as gaps:
        response = await client.get(f"/items/{created['id']}/fingerprint")

    assert max(gaps) < sum(gaps) / 2, f"the loop stalled {max(gaps):.3f} s of the request's {sum(gaps):.3f} s"
    assert (await response.json())["fingerprint"] == await asyncio.to_thread(fingerprint, Item(**created))


@pytest.mark.usefixtures("slow_fingerprints")
async def test_run_in_executor_keeps_the_loop_ticking_too() -> None:
    async with loop_watch() as gaps:
        await asyncio.get_running_loop().run_in_executor(None, fingerprint, Item(id=1, name="anvil", quantity=1))

    assert max(gaps) < sum(gaps) / 2, f"the loop stalled {max(gaps):.3f} s of the work's {sum(gaps):.3f} s"


async def test_blocking_call_on_the_loop_is_reported() -> None:
    with pytest.raises(BlockingError, match="sleep"):
        time.sleep(0.001)  # noqa: ASYNC251 - the mistake this test shows being caught


async def test_the_same_call_in_a_thread_is_fine() -> None:
    await asyncio.to_thread(time.sleep, 0.001)
