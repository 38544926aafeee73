"""SQLite under contention and faults: another process locking the file, a file or disk that refuses writes.

Several workers starting at once too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable

import aiosqlite
import pytest
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }} import migrations, store_sqlite
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.items import NewItem, StoreUnavailable
from {{ cookiecutter.package_name }}.settings import Settings

from .support.clients import Client

TIMEOUT = 0.1  # DATABASE_TIMEOUT below: no write may wait longer than twice that
RENDEZVOUS_TIMEOUT = 10.0  # seconds for every worker to reach the point of the race: far above what it takes
PENDING = migrations.pending
CONCURRENT = 50  # writes at once; queued behind each other, the last would wait CONCURRENT times TIMEOUT (5 s)
# The bound asserted: twice the timeout plus a margin for a busy machine, still far below the 5 s of queued writes
# (how fast the 503 comes on a quiet machine is a benchmark's figure, not a test's).
MARGIN = 2.0
StatvfsFault = Callable[[os.statvfs_result], os.statvfs_result]


@pytest.fixture
async def migrated(service_env: dict[str, str]) -> AsyncIterator[aiosqlite.Connection]:
    """Function scope: a connection to the test's own database file, migrated."""
    connection = await store_sqlite.connect(service_env["DATABASE_URL"], Settings().database_timeout)
    try:
        await store_sqlite.migrate(connection)
        yield connection
    finally:
        await connection.close()


async def readiness(client: Client) -> tuple[int, str]:
    """What /ready answers: its status, and the reason it gives when not ready."""
    response = await client.get("/ready")
    return response.status, (await response.json()).get("error", {}).get("message", "")


def full(usage: os.statvfs_result) -> os.statvfs_result:
    """The file system as it is, with no block free (for root, whose reserve SQLite may use, too)."""
    return os.statvfs_result((*usage[:3], 0, 0, *usage[5:]))


def read_only(usage: os.statvfs_result) -> os.statvfs_result:
    """The file system as it is, mounted read-only."""
    return os.statvfs_result((*usage[:8], usage.f_flag | os.ST_RDONLY, usage.f_namemax))


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
    assert (await failed.json())["error"]["code"] == "unavailable"
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


async def test_stores_sharing_a_connection_share_its_turn_to_write(
    settings: Settings, service_env: dict[str, str], migrated: aiosqlite.Connection
) -> None:
    """A store per resource on one connection ("Adding a resource"): each write still gets its 503 in time."""
    settings = dataclasses.replace(settings, database_url=service_env["DATABASE_URL"], database_timeout=TIMEOUT)
    connection = await store_sqlite.connect(settings.database_url, TIMEOUT)
    stores = [store_sqlite.SqliteItemStore(connection, settings) for _ in range(CONCURRENT)]

    async def timed_create(store: store_sqlite.SqliteItemStore) -> float:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.add(NewItem(name="during", quantity=0))
        return time.monotonic() - started

    async with aiosqlite.connect(store_sqlite.sqlite_path(settings.database_url)) as other_process:
        await other_process.execute("BEGIN EXCLUSIVE")
        waits = await asyncio.gather(*(timed_create(store) for store in stores))
        await other_process.execute("ROLLBACK")
    await connection.close()

    assert max(waits) < 2 * TIMEOUT + MARGIN


async def test_a_file_sqlite_could_open_only_read_only_is_not_ready_saying_why(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str], migrated: aiosqlite.Connection
) -> None:
    """A file the service may not write is opened read-only (SQLite's fallback): /ready says so, as writes do.

    The connection is opened read-only as SQLite opens such a file: changing the file's mode would not stop a test
    running as root, which may write any file.
    """
    settings = dataclasses.replace(settings, database_url=service_env["DATABASE_URL"])
    path = store_sqlite.sqlite_path(settings.database_url)
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None) as read_only_file:
        client = await aiohttp_client(
            create_app(settings, store=store_sqlite.SqliteItemStore(read_only_file, settings))
        )
        created = await client.post("/items", json={"name": "refused"})
        ready = await readiness(client)

    assert created.status == 503
    assert ready == (503, "sqlite: attempt to write a readonly database")
    writable = await aiohttp_client(create_app(settings, store=store_sqlite.SqliteItemStore(migrated, settings)))
    assert await readiness(writable) == (200, "")


@pytest.mark.skipif(sys.platform == "win32", reason="no statvfs: the file system is not checked on Windows")
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (full, r"sqlite: disk full: 0 bytes free for .+, a write may need \d+"),
        (read_only, r"sqlite: .+ is on a read-only file system"),
    ],
    ids=["full", "read-only"],
)
async def test_a_full_or_read_only_file_system_is_not_ready_until_it_clears(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    service_env: dict[str, str],
    migrated: aiosqlite.Connection,
    fault: StatvfsFault,
    reason: str,
) -> None:
    """/ready says why while the disk is full or read-only, and is 200 again once it is not, with no restart.

    The store reads the file system through os.statvfs, given here with the fault applied to its real answer:
    filling or remounting a real file system takes privileges (and a disk) a test may not have.
    """
    faulty = True

    def statvfs(folder: str) -> os.statvfs_result:
        usage = os.statvfs(folder)
        return fault(usage) if faulty else usage

    settings = dataclasses.replace(settings, database_url=service_env["DATABASE_URL"])
    client = await aiohttp_client(create_app(settings, store=store_sqlite.SqliteItemStore(migrated, settings, statvfs)))

    during = await readiness(client)
    faulty = False
    after = await readiness(client)

    assert during[0] == 503
    assert re.fullmatch(reason, during[1]), during[1]
    folder = os.path.dirname(store_sqlite.sqlite_path(settings.database_url))
    assert folder in during[1]
    assert after == (200, "")
    assert (await client.post("/items", json={"name": "after the fault"})).status == 201


async def test_a_connection_waits_out_a_lock_for_its_timeout_in_wal_mode(service_env: dict[str, str]) -> None:
    connection = await store_sqlite.connect(service_env["DATABASE_URL"], 2.5)
    try:
        [(journal_mode,)] = await connection.execute_fetchall("PRAGMA journal_mode")
        [(busy_timeout,)] = await connection.execute_fetchall("PRAGMA busy_timeout")
    finally:
        await connection.close()

    assert (journal_mode, busy_timeout) == ("wal", 2500)  # milliseconds


async def test_workers_starting_together_apply_each_migration_once(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = service_env["DATABASE_URL"]
    workers = [await store_sqlite.connect(url, Settings().database_timeout) for _ in range(4)]
    together = threading.Barrier(len(workers), timeout=RENDEZVOUS_TIMEOUT)

    def pending_once_all_have_looked(dialect: str, applied: set[str]) -> list[migrations.Migration]:
        found = PENDING(dialect, applied)
        together.wait()  # every worker has seen what is applied before any migrates: the race at its closest
        return found

    monkeypatch.setattr(migrations, "pending", pending_once_all_have_looked)
    try:
        await asyncio.gather(*(store_sqlite.migrate(worker) for worker in workers))
        versions = await workers[0].execute_fetchall("SELECT version FROM schema_migrations")
    finally:
        await asyncio.gather(*(worker.close() for worker in workers))

    shipped = await asyncio.to_thread(migrations.load, "sqlite")  # reads files: off the loop
    assert [version[0] for version in versions] == [migration.version for migration in shipped]
