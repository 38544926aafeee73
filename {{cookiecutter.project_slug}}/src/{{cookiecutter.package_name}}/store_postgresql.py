"""Items in PostgreSQL through an asyncpg pool.

The store borrows a connection per call through an `acquire` function (the
pool's own in the service), and every statement commits on its own. A
write's event is added by a trigger in the same transaction, which also
sends a NOTIFY (migrations/postgresql/0002_create_events.sql); every process
LISTENs on a connection of its own, and catches up whenever it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy

from . import migrations
from .items import Item, ItemEvent, NewItem
from .keys import SETTINGS, STORE

Connection = asyncpg.Connection | PoolConnectionProxy
Acquire = Callable[[], AbstractAsyncContextManager[Connection]]

POOL_SIZE = (2, 10)  # connections kept open, at most
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0
MIGRATION_LOCK = 0x17E5  # pg_advisory_xact_lock key: one migrator at a time
EVENT_CHANNEL = "item_events"  # what the events trigger NOTIFYs
RECONNECT_DELAY = (0.1, 5.0)  # seconds before the listener reconnects: first, then doubling up to the last
# A listener only receives, so a connection that went silent without closing (a NAT or firewall forgetting it, a
# server that vanished) would never be noticed: after this many quiet seconds it asks the server to answer, within
# CONNECT_TIMEOUT, or reconnects (and catches up).
LISTENER_CHECK_EVERY = 10.0

log = logging.getLogger(__name__)

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

    def __init__(self, acquire: Acquire, listen_url: str | None = None) -> None:
        """`listen_url`: where `watch` LISTENs for events (None: watch returns, no other process writes)."""
        self._acquire = acquire
        self._listen_url = listen_url

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

    async def events_after(self, after: int, limit: int) -> Sequence[ItemEvent]:
        sql = "SELECT id, type, item_id, name, quantity FROM events WHERE id > $1 ORDER BY id LIMIT $2"
        return [ItemEvent(row[0], row[1], Item(*row[2:])) for row in await self._fetch(sql, after, limit)]

    async def last_event_id(self) -> int:
        [[last]] = await self._fetch("SELECT coalesce(max(id), 0) FROM events")
        return int(last)

    async def watch(self, wake: Callable[[], None]) -> None:
        """LISTEN for the events trigger's NOTIFY on a connection of its own; reconnect (and catch up) when it is
        lost, sooner first, then less and less often."""
        if self._listen_url is None:
            return
        delay = RECONNECT_DELAY[0]
        while True:
            try:
                connection = await connect_whole(self._listen_url)
            except CONNECTION_ERRORS as error:
                log.warning("event listener: %s; retrying in %.1f s", unavailable(error), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY[1])
                continue
            delay = RECONNECT_DELAY[0]
            try:
                await listen(connection, wake)
            except CONNECTION_ERRORS as error:
                log.warning("event listener: %s; reconnecting", unavailable(error))
            finally:
                connection.terminate()  # closed already, or a connection in an unknown state


async def connect_whole(url: str) -> asyncpg.Connection:
    """A new connection to `url`. Cancelled, it first lets the attempt end (and closes what it made): asyncpg
    cancelled during its TLS negotiation leaves a future with an exception nobody retrieves, which asyncio then
    logs as an error with a traceback (a service whose port is taken would not stop with one line)."""
    attempt = asyncio.ensure_future(asyncpg.connect(url, timeout=CONNECT_TIMEOUT))
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        with contextlib.suppress(*CONNECTION_ERRORS):
            (await attempt).terminate()
        raise


async def listen(connection: asyncpg.Connection, wake: Callable[[], None]) -> None:
    """Call `wake` on every event NOTIFY, and once at the start (to catch up); return when the connection is lost,
    raise TimeoutError when it stops answering."""
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    await connection.add_listener(EVENT_CHANNEL, lambda *_: wake())
    wake()
    while not lost.is_set():
        try:
            await asyncio.wait_for(lost.wait(), LISTENER_CHECK_EVERY)
        except TimeoutError:
            await connection.execute("SELECT 1", timeout=CONNECT_TIMEOUT)
    log.warning("event listener: the connection was closed; reconnecting")


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
        app[STORE] = PostgresItemStore(pool.acquire, listen_url=url)
        yield
    finally:
        await pool.close()
