"""Database faults: when PostgreSQL stops taking connections, requests get 503 and the service recovers alone."""

from __future__ import annotations

import asyncio
import dataclasses
from urllib.parse import urlsplit

import asyncpg
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .support.clients import Client

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
