"""Items in PostgreSQL through an asyncpg pool.

The store borrows a connection per call through an `acquire` function (the
pool's own in the service, which gives up after DATABASE_POOL_TIMEOUT), and
every statement commits on its own and may run for DATABASE_TIMEOUT: with a
server that stopped answering, every request gets its 503 within the two. A
write's event is added by a trigger in the same transaction, which also
sends a NOTIFY (migrations/postgresql/0002_create_events.sql); every process
LISTENs on a connection of its own, and catches up whenever it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy

from . import migrations
from .items import IDEMPOTENCY_KEY_TTL, Item, ItemEvent, NewItem, replayed
from .keys import SETTINGS, STORE
from .settings import Settings

Connection = asyncpg.Connection | PoolConnectionProxy
Acquire = Callable[[], AbstractAsyncContextManager[Connection]]

POOL_SIZE = (2, 10)  # connections kept open, at most
CONNECT_TIMEOUT = 5.0
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


# One statement: the key is claimed (or an expired use of it taken over) and only then is the item added, with the
# id the key names; a key in use adds nothing. It also forgets up to IDEMPOTENCY_KEY_PRUNE_BATCH (100) other expired
# keys, oldest first.
ADD_ONCE = """
WITH pruned AS (
    DELETE FROM idempotency_keys WHERE key IN (
        SELECT key FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => $5) AND key <> $1
        ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED
    )
), used AS (
    INSERT INTO idempotency_keys AS used (key, digest, item_id)
        VALUES ($1, $2, nextval(pg_get_serial_sequence('items', 'id')))
        ON CONFLICT (key) DO UPDATE SET digest = excluded.digest, item_id = excluded.item_id, created_at = now()
        WHERE used.created_at <= now() - make_interval(secs => $5)
    RETURNING item_id
)
INSERT INTO items (id, name, quantity) OVERRIDING SYSTEM VALUE SELECT item_id, $3, $4 FROM used
RETURNING id, name, quantity
"""
USED_KEY = "SELECT digest, item_id FROM idempotency_keys WHERE key = $1"


class PostgresItemStore:
    """The items table, reached through borrowed connections."""

    def __init__(self, acquire: Acquire, settings: Settings, listen_url: str | None = None) -> None:
        """`acquire` should give up after settings.database_pool_timeout; `listen_url`: where `watch` LISTENs for
        events (None: watch returns, no other process writes)."""
        self._acquire = acquire
        self._timeout = settings.database_timeout
        self._pool_timeout = settings.database_pool_timeout
        self._listen_url = listen_url

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        try:
            async with self._acquire() as connection:
                try:
                    return await connection.fetch(sql, *args, timeout=self._timeout)
                except TimeoutError:
                    connection.terminate()  # it may never answer: close it now rather than wait to reset it
                    raise DatabaseUnavailable(f"postgresql: no answer within {self._timeout} s") from None
        except TimeoutError:
            raise DatabaseUnavailable(f"postgresql: no connection within {self._pool_timeout} s") from None
        except CONNECTION_ERRORS as error:
            raise unavailable(error) from error

    async def add(self, new: NewItem) -> Item:
        sql = "INSERT INTO items (name, quantity) VALUES ($1, $2) RETURNING id, name, quantity"
        [row] = await self._fetch(sql, new.name, new.quantity)
        return Item(*row)

    async def add_once(self, new: NewItem, key: str) -> tuple[Item, bool]:
        while True:  # again only when the key in use expired and was forgotten in between
            for row in await self._fetch(ADD_ONCE, key, new.digest(), new.name, new.quantity, IDEMPOTENCY_KEY_TTL):
                return Item(*row), True
            for digest, item_id in await self._fetch(USED_KEY, key):
                return replayed(new, digest, item_id), False

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
    """Migrate DATABASE_URL, open a pool to it, close the pool at exit."""
    settings = app[SETTINGS]
    url = settings.database_url
    with database_errors():
        # Migrations get a connection without the statement timeouts: a schema change may take as long as it needs.
        migrator = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    try:
        await migrate(migrator)
    finally:
        await migrator.close()
    with database_errors():
        pool = await asyncpg.create_pool(
            url,
            min_size=POOL_SIZE[0],
            max_size=POOL_SIZE[1],
            timeout=CONNECT_TIMEOUT,
            command_timeout=settings.database_timeout,
            # The server stops a statement at the same limit, so work no one waits for does not go on.
            server_settings={"statement_timeout": str(round(settings.database_timeout * 1000))},
        )
    try:
        acquire = functools.partial(pool.acquire, timeout=settings.database_pool_timeout)
        app[STORE] = PostgresItemStore(acquire, settings, listen_url=url)
        yield
    finally:
        await pool.close()
