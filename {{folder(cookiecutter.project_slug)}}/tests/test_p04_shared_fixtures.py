"""P4 - session- and module-scoped async fixtures.

Costly resources (a server, a client session, a connection pool) can be
shared: every fixture and test runs on one session-wide loop (see the
pytest settings in pyproject.toml), so a shared fixture is never
"attached to a different loop". Share only what tests do not change.
The tests check that each is built once per scope, whatever the test order.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }}.loop import loop_name
from {{ cookiecutter.package_name }}.upstream import fetch_status

from .support.clients import Client

BUILT: Counter[str] = Counter()  # how many times each fixture of this file was set up, in this process
SEEN: defaultdict[str, list[object]] = defaultdict(list)  # what each test got (kept alive, so no id is reused)


def on_this_loop(fixture: str) -> str:
    """A key for `fixture` on the running loop: --all-loops gives each loop its own shared fixtures."""
    return f"{fixture} on {loop_name(asyncio.get_running_loop())}"


def same_for_every_test(fixture: str, value: object) -> bool:
    """Note what this test got from `fixture`; whether every test so far, in any order, got that same object."""
    SEEN[on_this_loop(fixture)].append(value)
    return all(seen is value for seen in SEEN[on_this_loop(fixture)])


@pytest.fixture(scope="module")
async def module_session() -> AsyncIterator[aiohttp.ClientSession]:
    """Module scope: one client session for every test in this file, counted in BUILT."""
    BUILT[on_this_loop("module_session")] += 1
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_every_test_gets_the_one_session_wide_app(shared_client: Client, path: str) -> None:
    response = await shared_client.get(path)

    assert response.status == 200
    assert same_for_every_test("shared_client", shared_client)


@pytest.mark.parametrize("field", ["status", "version"])
async def test_module_session_is_built_once_for_all_tests_of_the_file(
    module_session: aiohttp.ClientSession, upstream: TestServer, field: str
) -> None:
    status = await fetch_status(module_session, str(upstream.make_url("/status")))

    assert field in status
    assert BUILT[on_this_loop("module_session")] == 1
    assert same_for_every_test("module_session", module_session)


async def test_module_session_stays_open_between_tests(module_session: aiohttp.ClientSession) -> None:
    assert not module_session.closed
    assert same_for_every_test("module_session", module_session)
