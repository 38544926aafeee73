"""P2 - an async fixture with cleanup.

A fixture that `yield`s inside `async with` closes its resource after the
test, even when the test fails. The service's own cleanup contexts follow
the same shape, and can be driven by hand to check their teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
{% if cookiecutter.database != "none" %}
from {{ cookiecutter.package_name }}.items import StoreUnavailable
{%- endif %}
from {{ cookiecutter.package_name }}.keys import SETTINGS, {% if cookiecutter.database != "none" %}STORE, {% endif %}UPSTREAM
from {{ cookiecutter.package_name }}.settings import Settings
{%- if cookiecutter.database != "none" %}
from {{ cookiecutter.package_name }}.store_{{ cookiecutter.database }} import store_context
{%- endif %}
from {{ cookiecutter.package_name }}.upstream import fetch_status, upstream_context


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """Function scope: a client session, closed after the test."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_fetch_status_reads_the_upstream_json(http_session: aiohttp.ClientSession, settings: Settings) -> None:
    status = await fetch_status(http_session, settings.upstream_url)

    assert status["status"] == "ok"


async def test_upstream_context_closes_its_session_at_exit(settings: Settings) -> None:
    app = web.Application()
    app[SETTINGS] = settings
    context = upstream_context(app)

    await anext(context)
    session = app[UPSTREAM]
    assert not session.closed
    with pytest.raises(StopAsyncIteration):
        await anext(context)

    assert session.closed
{%- if cookiecutter.database != "none" %}


async def test_store_context_closes_its_database_connections_at_exit(service_env: dict[str, str]) -> None:
    app = web.Application()
    app[SETTINGS] = Settings(database_url=service_env["DATABASE_URL"])  # a scratch database for this test alone
    context = store_context(app)

    await anext(context)
    store = app[STORE]
    assert await store.list(limit=1, offset=0) == []
    with pytest.raises(StopAsyncIteration):
        await anext(context)

    with pytest.raises(StoreUnavailable):
        await store.list(limit=1, offset=0)
{%- endif %}
