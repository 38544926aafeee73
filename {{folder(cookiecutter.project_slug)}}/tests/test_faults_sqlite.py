"""SQLite under contention: another process locking the file, several workers starting at once."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time

import aiosqlite
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }} import migrations, store_sqlite
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings

TIMEOUT = 0.1  # DATABASE_TIMEOUT below: no write may wait longer than twice that
MARGIN = 0.5  # for a busy machine
CONCURRENT = 20  # writes at once; queued behind each other, the last would wait CONCURRENT times TIMEOUT


async def test_locked_file_gives_503_and_the_service_recovers_without_a_restart(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str]
) -> None:
    url = service_env["DATABASE_URL"]
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url, database_timeout=0.05)))
    assert (await client.post("/items", json={"name": "before the fault"})).status == 201

    async with aiosqlite.connect(store_sqlite.sqlite_path(url)) as other_process:
        await other_process.execute("BEGIN EXCLUSIVE")
        failed = await client.post("/items", json={"name": "during the fault"})
        ready = await client.get("/ready")
        await other_process.execute("ROLLBACK")

    assert failed.status == 503
    assert (await failed.json())["error"]["code"] == "database_unavailable"
    assert ready.status == 503
    assert "database is locked" in (await ready.json())["error"]["message"]
    assert (await client.post("/items", json={"name": "after the fault"})).status == 201
    assert (await client.get("/ready")).status == 200


async def test_every_write_gets_its_503_within_twice_the_timeout_while_the_file_is_locked(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str]
) -> None:
    url = service_env["DATABASE_URL"]
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url, database_timeout=TIMEOUT)))

    async def timed_create(n: int) -> tuple[float, int]:
        started = time.monotonic()
        response = await client.post("/items", json={"name": f"during {n}"})
        return time.monotonic() - started, response.status

    async with aiosqlite.connect(store_sqlite.sqlite_path(url)) as other_process:
        await other_process.execute("BEGIN EXCLUSIVE")
        answers = await asyncio.gather(*(timed_create(n) for n in range(CONCURRENT)))
        ready = await client.get("/ready")
        await other_process.execute("ROLLBACK")

    assert {status for _, status in answers} == {503}
    assert max(seconds for seconds, _ in answers) < 2 * TIMEOUT + MARGIN
    message = (await ready.json())["error"]["message"]
    assert re.fullmatch(rf"sqlite: (database is locked|database busy: no turn to write within {TIMEOUT} s)", message)
    assert (await client.post("/items", json={"name": "after the fault"})).status == 201


async def test_workers_starting_together_apply_each_migration_once(service_env: dict[str, str]) -> None:
    url = service_env["DATABASE_URL"]
    workers = [await store_sqlite.connect(url, Settings().database_timeout) for _ in range(4)]
    try:
        await asyncio.gather(*(store_sqlite.migrate(worker) for worker in workers))
        versions = await workers[0].execute_fetchall("SELECT version FROM schema_migrations")
    finally:
        await asyncio.gather(*(worker.close() for worker in workers))

    shipped = await asyncio.to_thread(migrations.load, "sqlite")  # reads files: off the loop
    assert [version[0] for version in versions] == [migration.version for migration in shipped]
