"""P7 - asyncio.gather: many awaits at once.

gather runs awaitables concurrently and returns their results in order. By
default the first exception propagates; with return_exceptions=True every
outcome comes back, failures as exception objects to inspect.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }}.upstream import UpstreamError, fetch_status

from .helpers import Client


async def test_concurrent_creates_all_succeed_with_distinct_ids(client: Client) -> None:
    responses = await asyncio.gather(*(client.post("/items", json={"name": f"item {n}"}) for n in range(20)))

    assert [response.status for response in responses] == [201] * 20
    assert len({(await response.json())["id"] for response in responses}) == 20


async def test_return_exceptions_keeps_every_outcome(upstream: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            fetch_status(session, str(upstream.make_url("/status"))),
            fetch_status(session, str(upstream.make_url("/error"))),
            fetch_status(session, str(upstream.make_url("/garbage"))),
            return_exceptions=True,
        )

    assert isinstance(results[0], dict)
    assert isinstance(results[1], UpstreamError)
    assert isinstance(results[2], UpstreamError)
