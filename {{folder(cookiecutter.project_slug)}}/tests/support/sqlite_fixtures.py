"""SQLite fixtures: a temporary database file, each test inside a rolled-back transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.store_sqlite import SqliteItemStore, connect, migrate

from .clients import AgeKeys, KeptKeys


class RolledBackItemStore(SqliteItemStore):
    """The store inside a test's transaction: the real readiness check would look at DATABASE_URL's folder."""

    async def ping(self) -> None:
        """Ready when a read answers."""
        await self.get(0)


@pytest.fixture(scope="session")
async def database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[aiosqlite.Connection]:
    """Session scope: one migrated connection to a temporary file, never the developer's DATABASE_URL."""
    path = tmp_path_factory.mktemp("sqlite") / "test.db"
    connection = await connect(f"sqlite:///{path}", Settings().database_timeout)
    await migrate(connection)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
def session_store(database: aiosqlite.Connection) -> SqliteItemStore:
    """Session scope: the store of the shared app (its tests write nothing)."""
    return RolledBackItemStore(database, Settings())


@pytest.fixture
async def store(database: aiosqlite.Connection) -> AsyncIterator[SqliteItemStore]:
    """Function scope: the test's writes, the app's included, are rolled back at teardown."""
    await database.execute("BEGIN")
    try:
        yield RolledBackItemStore(database, Settings())
    finally:
        await database.execute("ROLLBACK")


@pytest.fixture
def age_keys(database: aiosqlite.Connection) -> AgeKeys:
    """Function scope: `await age_keys(seconds)` makes every idempotency key in the test's transaction older."""

    async def age(seconds: float) -> None:
        await database.execute_fetchall("UPDATE idempotency_keys SET created_at = created_at - ?", (seconds,))

    return age


@pytest.fixture
def kept_keys(database: aiosqlite.Connection) -> KeptKeys:
    """Function scope: `await kept_keys()` counts the idempotency keys in the test's transaction."""

    async def count() -> int:
        [[kept]] = await database.execute_fetchall("SELECT count(*) FROM idempotency_keys")
        return int(kept)

    return count


@pytest.fixture
def service_env(tmp_path: Path) -> dict[str, str]:
    """Function scope: environment for a real service process, with a database file of its own."""
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}"}
