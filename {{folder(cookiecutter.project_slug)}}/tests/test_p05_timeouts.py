"""P5 - timeouts with asyncio.timeout and asyncio.wait_for.

Bound every wait that depends on something outside the test: the test then
fails in a fraction of a second instead of hanging. The service does the
same to its upstream calls, which is what the last test checks.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }}.events import Hub
from {{ cookiecutter.package_name }}.items import ItemStore
from {{ cookiecutter.package_name }}.upstream import UpstreamTimeout, fetch_status

from .support.clients import ClientFactory


async def test_asyncio_timeout_bounds_a_slow_upstream_call(upstream: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await session.get(upstream.make_url("/slow"))


async def test_wait_for_gives_up_when_nothing_wakes_the_hub(store: ItemStore) -> None:
    hub = Hub(store)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(hub.woken.wait(), timeout=0.01)


async def test_session_timeout_becomes_upstream_timeout(upstream: TestServer) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.01)) as session:
        with pytest.raises(UpstreamTimeout):
            await fetch_status(session, str(upstream.make_url("/slow")))


async def test_slow_upstream_answers_504(client_with: ClientFactory, upstream: TestServer) -> None:
    client = await client_with(upstream_url=str(upstream.make_url("/slow")), upstream_timeout=0.01)

    response = await client.get("/upstream")

    assert response.status == 504
    assert (await response.json())["error"]["code"] == "upstream_timeout"
