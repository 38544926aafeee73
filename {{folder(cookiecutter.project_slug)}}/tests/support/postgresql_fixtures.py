"""PostgreSQL fixtures: databases of their own on TEST_DATABASE_URL's server.

Each test runs inside a rolled-back transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
import pytest

from {{ cookiecutter.package_name }}.lender import Acquire, Connection, Lender
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.store_postgresql import PostgresItemStore, migrate

from .clients import AgeKeys, KeptKeys

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Ends every connection to the database named $1 (but the caller's own).
TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"


NO_SERVER = pytest.StashKey[str]()


def no_server(error: BaseException) -> str:
    """What to tell a developer whose tests cannot reach TEST_DATABASE_URL."""
    return (
        f"no PostgreSQL at TEST_DATABASE_URL={TEST_DATABASE_URL} ({str(error) or type(error).__name__}); "
        "point TEST_DATABASE_URL at a server or start one with `docker compose up -d db`"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With no server to reach, leave out the tests that need one and say why once, not once per test.

    Under CI a missing server fails every such test instead (the `server` fixture).
    """
    needing = {id(item) for item in items if "server" in getattr(item, "fixturenames", ())}
    if not needing or os.environ.get("CI"):
        return

    async def reach() -> None:
        await (await asyncpg.connect(TEST_DATABASE_URL, timeout=5)).close()

    try:
        asyncio.run(reach())
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        config.hook.pytest_deselected(items=[item for item in items if id(item) in needing])
        items[:] = [item for item in items if id(item) not in needing]
        config.stash[NO_SERVER] = f"{len(needing)} tests that need PostgreSQL left out: {no_server(error)}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if NO_SERVER in config.stash:
        terminalreporter.write_line(config.stash[NO_SERVER])


@pytest.fixture(scope="session")
async def server() -> AsyncIterator[asyncpg.Connection]:
    """Session scope: a connection to TEST_DATABASE_URL, to make databases with; skip (fail under CI) without it."""
    try:
        connection = await asyncpg.connect(TEST_DATABASE_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        if os.environ.get("CI"):
            pytest.fail(no_server(error), pytrace=False)
        pytest.skip(no_server(error))  # it answered at collection, and no longer does
    yield connection
    await connection.close()


NewDatabase = Callable[[], Awaitable[str]]


@pytest.fixture(scope="session")
async def new_database(server: asyncpg.Connection) -> AsyncIterator[NewDatabase]:
    """Session scope: `await new_database()` is the URL of a new, empty database on the server.

    Each is dropped at the end of the run, not of its test: by then nothing is connected to it, while a drop that
    has to cut connections (an app or a service process still closing) waits for them, every time.
    """
    names: list[str] = []

    async def create() -> str:
        name = f"scratch_{uuid.uuid4().hex[:16]}"
        await server.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return urlsplit(TEST_DATABASE_URL)._replace(path=f"/{name}").geturl()

    yield create
    await asyncio.gather(*(drop(name) for name in names))


async def drop(name: str) -> None:
    """Drop a database, on a connection of its own: drops side by side share the server's checkpoints.

    One after the other, each waits for a checkpoint of its own: 15 took a second on a quiet machine, 0.1 s at once,
    and a busy one made a run's drops outlast the last test's teardown limit.
    """
    connection = await asyncpg.connect(TEST_DATABASE_URL, timeout=5)
    try:
        await connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def database_url(new_database: NewDatabase) -> str:
    """Session scope: a database of this run's own.

    Runs side by side (two checkouts, pytest-xdist's workers) then never share rows or wait for each other's
    locks: a test's transaction holds the events lock from its first write to its rollback.
    """
    return await new_database()


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Session scope: one migrated connection to the run's database."""
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        await migrate(connection)
        yield connection
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def acquire(database: asyncpg.Connection) -> Acquire:
    """Session scope: lends the one test connection (and so its transaction) to the app, one caller at a time."""
    lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def lend() -> AsyncIterator[Connection]:
        async with lock:
            yield database

    return lend


@pytest.fixture(scope="session")
def lender(acquire: Acquire) -> Lender:
    """Session scope: lends the one test connection to every store, a statement at a time."""
    return Lender(acquire, 1, Settings().database_pool_timeout)


@pytest.fixture(scope="session")
def session_store(lender: Lender) -> PostgresItemStore:
    """Session scope: the store of the shared app."""
    return PostgresItemStore(lender, Settings())


@pytest.fixture
async def store(database: asyncpg.Connection, acquire: Acquire, lender: Lender) -> AsyncIterator[PostgresItemStore]:
    """Function scope: the test's writes, the app's included, are rolled back at teardown."""
    transaction = database.transaction()
    await transaction.start()
    try:
        yield PostgresItemStore(lender, Settings())
    finally:
        async with acquire():  # once a query the app may still be running (its event reader) has finished
            await transaction.rollback()


@pytest.fixture
def age_keys(acquire: Acquire) -> AgeKeys:
    """Function scope: `await age_keys(seconds)` makes every idempotency key in the test's transaction older."""

    async def age(seconds: float) -> None:
        async with acquire() as connection:
            await connection.execute(
                "UPDATE idempotency_keys SET created_at = created_at - make_interval(secs => $1)", seconds
            )

    return age


@pytest.fixture
def kept_keys(acquire: Acquire) -> KeptKeys:
    """Function scope: `await kept_keys()` counts the idempotency keys in the test's transaction."""

    async def count() -> int:
        async with acquire() as connection:
            return int(await connection.fetchval("SELECT count(*) FROM idempotency_keys"))

    return count


@pytest.fixture(scope="session")
async def scratch_database_url(new_database: NewDatabase) -> str:
    """Session scope: a database for the tests that work outside the rolled-back transaction (service_env)."""
    return await new_database()


@pytest.fixture
async def service_env(server: asyncpg.Connection, scratch_database_url: str) -> dict[str, str]:
    """Function scope: environment for a real service process (or an app of the test's own) on an empty database.

    The run's scratch database, emptied for each test: its schema dropped and made again, quicker than a new
    database. Anything still connected from an earlier test is cut off first, so no lock it holds is waited for.
    """
    name = urlsplit(scratch_database_url).path.lstrip("/")
    await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')  # a fault test may have closed it
    await server.execute(TERMINATE, name)
    connection = await asyncpg.connect(scratch_database_url, timeout=5)
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()
    return {"DATABASE_URL": scratch_database_url}
