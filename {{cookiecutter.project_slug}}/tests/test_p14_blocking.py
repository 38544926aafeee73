"""P14 - blocking work kept off the loop, and caught when it is not.

CPU-heavy or blocking calls go to a thread (`asyncio.to_thread`) so the
loop keeps serving. The autouse `blockbuster` fixture (conftest.py) turns a
blocking call made on the loop by the service or the tests into a
BlockingError, so a slip fails a test instead of slowing production.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from blockbuster import BlockingError

from {{ cookiecutter.package_name }}.fingerprint import fingerprint
from {{ cookiecutter.package_name }}.items import Item

from .support.clients import Client


async def test_fingerprint_runs_in_a_thread_and_is_stable(client: Client) -> None:
    created = await (await client.post("/items", json={"name": "anvil", "quantity": 1})).json()

    first, second = await asyncio.gather(client.get(f"/items/{created['id']}/fingerprint"), client.get("/health"))

    assert second.status == 200
    assert (await first.json())["fingerprint"] == await asyncio.to_thread(fingerprint, Item(**created))


async def test_blocking_call_on_the_loop_is_reported() -> None:
    with pytest.raises(BlockingError, match="sleep"):
        time.sleep(0.001)  # noqa: ASYNC251 - the mistake this test shows being caught


async def test_the_same_call_in_a_thread_is_fine() -> None:
    await asyncio.to_thread(time.sleep, 0.001)
