"""Database faults: when PostgreSQL stops taking connections, requests get 503 and the service recovers alone;
when the event listener's connection goes silent, it notices, reconnects and catches up."""

from __future__ import annotations

import asyncio
import dataclasses
from urllib.parse import urlsplit

import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }} import store_postgresql
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.store_postgresql import Acquire, PostgresItemStore

from .support.clients import Client
from .support.postgresql_fixtures import TEST_DATABASE_URL
from .support.tcp_proxy import running_proxy

RECOVERY_TIMEOUT = 5.0
POLL = 0.05
TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"


async def cut_off(database: asyncpg.Connection, name: str, *, allowed: bool) -> None:
    """Open or close a database to new connections; closing also ends the open ones."""
    await database.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
    if not allowed:
        await database.execute(TERMINATE, name)


async def wait_until_ready(client: Client) -> None:
    """Poll /ready until it answers 200; fail after RECOVERY_TIMEOUT."""
    for _ in range(int(RECOVERY_TIMEOUT / POLL)):
        if (await client.get("/ready")).status == 200:
            return
        await asyncio.sleep(POLL)
    raise AssertionError(f"not ready {RECOVERY_TIMEOUT} s after the database came back")


async def test_lost_database_gives_503_and_the_service_recovers_without_a_restart(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str], database: asyncpg.Connection
) -> None:
    url = service_env["DATABASE_URL"]
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    assert (await client.post("/items", json={"name": "before the fault"})).status == 201

    await cut_off(database, urlsplit(url).path.lstrip("/"), allowed=False)
    failed = await client.post("/items", json={"name": "during the fault"})
    ready = await client.get("/ready")

    assert failed.status == 503
    assert (await failed.json())["error"]["code"] == "database_unavailable"
    assert ready.status == 503
    assert (await ready.json())["error"]["message"].startswith("postgresql:")

    await cut_off(database, urlsplit(url).path.lstrip("/"), allowed=True)
    await wait_until_ready(client)
    items = (await (await client.get("/items")).json())["items"]

    assert [item["name"] for item in items] == ["before the fault"]


async def test_a_listener_whose_connection_goes_silent_reconnects_and_catches_up(
    acquire: Acquire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy between the listener and the server stops carrying its bytes but keeps both sockets open: the
    listener must notice (its check gets no answer), reconnect and wake the hub again to catch up."""
    monkeypatch.setattr(store_postgresql, "LISTENER_CHECK_EVERY", 0.2)
    monkeypatch.setattr(store_postgresql, "CONNECT_TIMEOUT", 0.5)
    server = urlsplit(TEST_DATABASE_URL)
    wakes: asyncio.Queue[None] = asyncio.Queue()
    async with running_proxy((server.hostname or "127.0.0.1", server.port or 5432)) as proxy:
        credentials = server.netloc.rpartition("@")[0]
        url = server._replace(netloc=f"{credentials}@127.0.0.1:{proxy.port}").geturl()
        watcher = asyncio.create_task(PostgresItemStore(acquire, listen_url=url).watch(lambda: wakes.put_nowait(None)))
        try:
            await asyncio.wait_for(wakes.get(), RECOVERY_TIMEOUT)  # listening, caught up once
            proxy.silence()
            await asyncio.wait_for(wakes.get(), RECOVERY_TIMEOUT)  # noticed, reconnected, caught up again
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
