"""P4 - session- and module-scoped async fixtures.

Costly resources (a server, a client session, a connection pool) can be
shared: every fixture and test runs on one session-wide loop (see the
pytest settings in pyproject.toml), so a shared fixture is never
"attached to a different loop". Share only what tests do not change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }}.upstream import fetch_status

from .support.clients import Client


@pytest.fixture(scope="module")
async def module_session() -> AsyncIterator[aiohttp.ClientSession]:
    """Module scope: one client session for every test in this file."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_shared_app_answers_health(shared_client: Client) -> None:
    response = await shared_client.get("/health")

    assert response.status == 200


async def test_shared_app_is_still_up_for_the_next_test(shared_client: Client) -> None:
    response = await shared_client.get("/ready")

    assert await response.json() == {"status": "ready"}


async def test_module_session_calls_the_upstream(module_session: aiohttp.ClientSession, upstream: TestServer) -> None:
    assert (await fetch_status(module_session, str(upstream.make_url("/status"))))["status"] == "ok"


async def test_module_session_is_reused_open(module_session: aiohttp.ClientSession, upstream: TestServer) -> None:
    assert not module_session.closed
    assert (await fetch_status(module_session, str(upstream.make_url("/status"))))["version"] == "1.2.3"
