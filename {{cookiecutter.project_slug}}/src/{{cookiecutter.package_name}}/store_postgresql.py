"""Items in PostgreSQL through an asyncpg pool.

The store borrows a connection per call through an `acquire` function (the
pool's own in the service), and every statement commits on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy

from . import migrations
from .items import Item, NewItem
from .keys import SETTINGS, STORE

Connection = asyncpg.Connection | PoolConnectionProxy
Acquire = Callable[[], AbstractAsyncContextManager[Connection]]

POOL_SIZE = (2, 10)  # connections kept open, at most
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0
MIGRATION_LOCK = 0x17E5  # pg_advisory_xact_lock key: one migrator at a time

# Server errors, a closed or broken connection (InternalClientError: a connection cut mid-query), no route.
CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or refuses the operation right now."""


def unavailable(error: Exception) -> DatabaseUnavailable:
    """The DatabaseUnavailable that reports a driver error."""
    return DatabaseUnavailable(f"postgresql: {str(error) or type(error).__name__}")


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Turn the driver's errors into DatabaseUnavailable (at start-up; queries use a plain try, 10x cheaper)."""
    try:
        yield
    except CONNECTION_ERRORS as error:
        raise unavailable(error) from error


async def migrate(connection: Connection) -> None:
    """Apply the migrations this database has not seen yet, under an advisory lock."""
    with database_errors():
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY)")
            rows = await connection.fetch("SELECT version FROM schema_migrations")
            applied = {row["version"] for row in rows}
            for migration in await asyncio.to_thread(migrations.pending, "postgresql", applied):
                await connection.execute(migration.sql)
                await connection.execute("INSERT INTO schema_migrations VALUES ($1)", migration.version)


class PostgresItemStore:
    """The items table, reached through borrowed connections."""

    def __init__(self, acquire: Acquire) -> None:
        self._acquire = acquire

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        try:
            async with self._acquire() as connection:
                return await connection.fetch(sql, *args)
        except CONNECTION_ERRORS as error:
            raise unavailable(error) from error

    async def add(self, new: NewItem) -> Item:
        sql = "INSERT INTO items (name, quantity) VALUES ($1, $2) RETURNING id, name, quantity"
        [row] = await self._fetch(sql, new.name, new.quantity)
        return Item(*row)

    async def get(self, item_id: int) -> Item | None:
        for row in await self._fetch("SELECT id, name, quantity FROM items WHERE id = $1", item_id):
            return Item(*row)
        return None

    async def list(self, limit: int, offset: int) -> list[Item]:
        sql = "SELECT id, name, quantity FROM items ORDER BY id LIMIT $1 OFFSET $2"
        return [Item(*row) for row in await self._fetch(sql, limit, offset)]

    async def delete(self, item_id: int) -> Item | None:
        for row in await self._fetch("DELETE FROM items WHERE id = $1 RETURNING id, name, quantity", item_id):
            return Item(*row)
        return None

    async def ping(self) -> None:
        """Check that the items table answers."""
        await self._fetch("SELECT 1 FROM items LIMIT 0")


async def store_context(app: web.Application) -> AsyncIterator[None]:
    """Open a pool to DATABASE_URL, migrate, close the pool at exit."""
    url = app[SETTINGS].database_url
    with database_errors():
        pool = await asyncpg.create_pool(
            url, min_size=POOL_SIZE[0], max_size=POOL_SIZE[1], timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
        )
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
        app[STORE] = PostgresItemStore(pool.acquire)
        yield
    finally:
        await pool.close()
