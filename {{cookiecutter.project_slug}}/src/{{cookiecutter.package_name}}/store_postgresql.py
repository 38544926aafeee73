"""Items in PostgreSQL through an asyncpg pool.

The store borrows a connection per call through an `acquire` function: the
app passes the pool's, a test passes one that lends the same connection
inside its transaction, so the app sees the test's rows and the rollback
removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy

from . import migrations
from .items import DatabaseUnavailable
from .keys import SETTINGS, STORE
from .store_sql import Row, SqlStore

Connection = asyncpg.Connection | PoolConnectionProxy
Acquire = Callable[[], AbstractAsyncContextManager[Connection]]

POOL_SIZE = (2, 10)  # connections kept open, at most
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0
MIGRATION_LOCK = 0x17E5  # pg_advisory_xact_lock key: one migrator at a time


# Server errors, a closed or broken connection (InternalClientError: a connection cut mid-query), no route.
CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except CONNECTION_ERRORS as error:
        raise DatabaseUnavailable(f"postgresql: {error or type(error).__name__}") from error


def shared_connection(connection: asyncpg.Connection) -> Acquire:
    """Lend one connection to concurrent callers, one at a time (for tests)."""
    lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def acquire() -> AsyncIterator[Connection]:
        async with lock:
            yield connection

    return acquire


async def migrate(connection: Connection) -> None:
    """Apply the migrations this database has not seen yet, under an advisory lock."""
    with _database_errors():
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY)")
            rows = await connection.fetch("SELECT version FROM schema_migrations")
            applied = {row["version"] for row in rows}
            for migration in await asyncio.to_thread(migrations.pending, "postgresql", applied):
                await connection.execute(migration.sql)
                await connection.execute("INSERT INTO schema_migrations VALUES ($1)", migration.version)


class PostgresItemStore(SqlStore):
    """The items table, reached through borrowed connections."""

    def __init__(self, acquire: Acquire) -> None:
        self._acquire = acquire

    async def _rows(self, sql: str, *args: object) -> Sequence[Row]:
        with _database_errors():
            async with self._acquire() as connection:
                return await connection.fetch(sql, *args)


async def store_context(app: web.Application) -> AsyncIterator[None]:
    """Open a pool to DATABASE_URL, migrate, close the pool at exit."""
    url = app[SETTINGS].database_url
    with _database_errors():
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
