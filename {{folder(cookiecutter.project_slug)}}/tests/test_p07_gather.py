"""P7 - asyncio.gather: many awaits at once.

gather runs awaitables concurrently and returns their results in the order
they were passed, whatever order they finish in. By default the first
exception propagates and the other awaitables run on, for the caller to end;
with return_exceptions=True every outcome comes back, failures as exception
objects to inspect.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }}.upstream import UpstreamError, fetch_status


async def test_results_come_back_in_the_order_passed_not_the_order_finished(upstream: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        slow_first = await asyncio.gather(
            fetch_status(session, str(upstream.make_url("/delayed/30"))),
            fetch_status(session, str(upstream.make_url("/delayed/0"))),
        )

    assert [result["delayed_ms"] for result in slow_first] == [30, 0]


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


async def test_without_return_exceptions_the_first_failure_propagates_and_the_rest_run_on(
    upstream: TestServer,
) -> None:
    async with aiohttp.ClientSession() as session:
        never = asyncio.ensure_future(fetch_status(session, str(upstream.make_url("/slow"))))  # never answers
        with pytest.raises(UpstreamError, match="HTTP 503"):
            await asyncio.gather(never, fetch_status(session, str(upstream.make_url("/error"))))

        assert not never.done()  # gather cancels nothing: end the others yourself (or use a TaskGroup, P8)
        never.cancel()
        with pytest.raises(asyncio.CancelledError):
            await never
