"""P14 - blocking work kept off the loop, and caught when it is not.

CPU work runs in a thread (`asyncio.to_thread`, or `loop.run_in_executor`)
so the loop keeps serving: the loop's thread spends a fraction of the work's
CPU time (CPU time, not wall time, so a busy machine cannot blur it); the autouse
`blockbuster` fixture (conftest.py) makes a blocking call on the loop raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest
from blockbuster import BlockingError

from {{ cookiecutter.package_name }} import fingerprint as fingerprint_module
from {{ cookiecutter.package_name }}.fingerprint import fingerprint
from {{ cookiecutter.package_name }}.items import Item

from .support.clients import Client


@contextlib.contextmanager
def loop_cpu() -> Iterator[list[float]]:
    """The CPU time the calling thread (the loop's) spends while the block runs.

    Unlike wall time, other processes on a busy machine cannot inflate it.
    """
    spent: list[float] = []
    started = time.thread_time()
    yield spent
    spent.append(time.thread_time() - started)


def cpu_cost(item: Item) -> tuple[str, float]:
    """`item`'s fingerprint, and the CPU time computing it took (run it in a thread)."""
    started = time.thread_time()
    return fingerprint(item), time.thread_time() - started


@pytest.fixture
def slow_fingerprints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Function scope: fingerprints take twice the service's iterations, far more CPU than a request's own."""
    monkeypatch.setattr(fingerprint_module, "ITERATIONS", 200_000)


@pytest.mark.usefixtures("slow_fingerprints")
async def test_the_loop_does_not_compute_the_fingerprint(client: Client) -> None:
    created = await (await client.post("/items", json={"name": "anvil", "quantity": 1})).json()

    with loop_cpu() as spent:
        response = await client.get(f"/items/{created['id']}/fingerprint")

    expected, cost = await asyncio.to_thread(cpu_cost, Item(**created))
    assert spent[0] < cost / 2, f"the loop's thread spent {spent[0]:.3f} s of CPU; the fingerprint costs {cost:.3f} s"
    assert (await response.json())["fingerprint"] == expected


@pytest.mark.usefixtures("slow_fingerprints")
async def test_run_in_executor_keeps_the_work_off_the_loop_too() -> None:
    item = Item(id=1, name="anvil", quantity=1)

    with loop_cpu() as spent:
        _, cost = await asyncio.get_running_loop().run_in_executor(None, cpu_cost, item)

    assert spent[0] < cost / 2, f"the loop's thread spent {spent[0]:.3f} s of CPU; the work costs {cost:.3f} s"


async def test_blocking_call_on_the_loop_is_reported() -> None:
    with pytest.raises(BlockingError, match="sleep"):
        time.sleep(0.001)  # noqa: ASYNC251 - the mistake this test shows being caught


async def test_the_same_call_in_a_thread_is_fine() -> None:
    await asyncio.to_thread(time.sleep, 0.001)
