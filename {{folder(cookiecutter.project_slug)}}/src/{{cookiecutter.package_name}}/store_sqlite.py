"""Items in SQLite through aiosqlite: one connection per app, one statement per write.

The connection runs in autocommit mode, so every write is committed before
its response is sent. A write's event is added by a trigger in the same
statement (migrations/sqlite/0002_create_events.sql). One write at a time
goes to the connection, and the creates that come while one waits share the
next statement (one multi-row INSERT, one trip to the connection's thread
and one commit for them all): each waits up to DATABASE_TIMEOUT for its turn, then
up to DATABASE_TIMEOUT for the file's write lock, so while another process
holds the lock every write gets its 503 within twice that (queued behind each
other in the connection's thread, the tenth would wait ten). Processes sharing the
file learn of each other's events by polling for new ids every
EVENT_POLL_INTERVAL seconds. Ready means a write would be taken: the file
system is neither read-only nor full, and SQLite takes the write lock for a
statement that changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path

import aiosqlite
from aiohttp import web

from . import migrations
from .items import IDEMPOTENCY_KEY_TTL, Item, ItemEvent, NewItem, StoreUnavailable, replayed
from .keys import SETTINGS, STORE
from .settings import Settings

URL_PREFIX = "sqlite:///"
EVENT_POLL_INTERVAL = 0.1  # seconds: the longest another process's event waits to be seen here (a cheap query)
MIN_FREE_BYTES = 1024 * 1024  # free disk /ready asks for: the few pages a write adds to the WAL, many times over
# Takes the write lock and changes nothing: SQLite refuses it as it would a write (a file it could open read-only
# only, a lock another connection holds past the busy timeout), and a success writes nothing to disk.
WRITE_PROBE = "UPDATE schema_migrations SET version = version WHERE false"
Statvfs = Callable[[str], "os.statvfs_result"]
STATVFS: Statvfs | None = None if sys.platform == "win32" else os.statvfs  # Windows has none: no disk check there


def sqlite_path(url: str) -> str:
    """The file path in a `sqlite:///relative/path` or `sqlite:////absolute/path` URL."""
    if not url.startswith(URL_PREFIX) or url == URL_PREFIX:
        raise StoreUnavailable(f"DATABASE_URL must look like sqlite:///./data/app.db, got {url!r}")
    return url.removeprefix(URL_PREFIX)


DRIVER_ERRORS = (sqlite3.Error, OSError, ValueError)  # ValueError: the connection is closed


def unavailable(error: Exception) -> StoreUnavailable:
    """The StoreUnavailable that reports a driver error."""
    return StoreUnavailable(f"sqlite: {error}")


def check_file_system(folder: Path, statvfs: Statvfs) -> None:
    """Raise StoreUnavailable if the file system holding `folder` would refuse a write now: read-only, or full."""
    usage = statvfs(str(folder))
    if usage.f_flag & os.ST_RDONLY:
        raise StoreUnavailable(f"sqlite: {folder} is on a read-only file system")
    free = usage.f_frsize * (usage.f_bfree if os.geteuid() == 0 else usage.f_bavail)  # root may use the reserve
    if free < MIN_FREE_BYTES:
        raise StoreUnavailable(f"sqlite: disk full: {free} bytes free for {folder}, a write may need {MIN_FREE_BYTES}")


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Turn the driver's errors into StoreUnavailable (at start-up: queries use a plain try, which costs less)."""
    try:
        yield
    except DRIVER_ERRORS as error:
        raise unavailable(error) from error


async def connect(url: str, lock_timeout: float) -> aiosqlite.Connection:
    """Open the database file (creating its folder) in autocommit, WAL mode.

    A statement waits up to `lock_timeout` seconds for another connection's lock.
    """
    path = sqlite_path(url)
    with database_errors():
        if path != ":memory:":
            await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        try:
            busy_timeout = round(lock_timeout * 1000)
            for pragma in ("journal_mode = WAL", "synchronous = NORMAL", f"busy_timeout = {busy_timeout}"):
                await connection.execute(f"PRAGMA {pragma}")
        except BaseException:
            await connection.close()
            raise
    return connection


async def migrate(connection: aiosqlite.Connection) -> None:
    """Apply the migrations this database has not seen yet."""
    with database_errors():
        await connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)")
        rows = await connection.execute_fetchall("SELECT version FROM schema_migrations")
        for migration in await asyncio.to_thread(migrations.pending, "sqlite", {row[0] for row in rows}):
            # IMMEDIATE: one process migrates at a time (several workers may start together). The version
            # row goes first, so a process that waited for another's migration fails on its key and skips it.
            recorded = f"INSERT INTO schema_migrations VALUES ('{migration.version}');"
            try:
                await connection.executescript(f"BEGIN IMMEDIATE;\n{recorded}\n{migration.sql}\nCOMMIT;")
            except sqlite3.IntegrityError:
                await connection.execute("ROLLBACK")


# Inserting into this view adds the item and its key in one statement (migrations/sqlite/0003_...sql).
ADD_ONCE = "INSERT INTO keyed_items (key, digest, name, quantity, created_at, expired_before) VALUES (?, ?, ?, ?, ?, ?)"
USED_KEY = "SELECT digest, item_id FROM idempotency_keys WHERE key = ?"
RETURNED = "RETURNING id, name, quantity"
CREATE_GROUP = 500  # creates stored by one INSERT at most: 1,000 parameters, far below SQLite's limit (32,766)


# One write at a time per connection, whichever store it is for: a second resource's store on the same
# connection waits for the same turn, not behind it in the connection's thread.
WRITE_TURNS: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


class SqliteItemStore:
    """The items table of one open SQLite connection.

    `statvfs` tells the state of the file system holding DATABASE_URL's file (None: not checked).
    """

    def __init__(self, connection: aiosqlite.Connection, settings: Settings, statvfs: Statvfs | None = STATVFS) -> None:
        self._connection = connection
        self._timeout = settings.database_timeout
        self._writing = WRITE_TURNS.setdefault(connection, asyncio.Lock())
        self._folder = Path(sqlite_path(settings.database_url)).parent
        self._statvfs = statvfs
        self._creates: list[tuple[NewItem, asyncio.Future[Item]]] = []  # waiting for their turn, oldest first
        self._inserting: set[asyncio.Task[None]] = set()  # tasks storing a group of them

    async def _fetch(self, sql: str, parameters: tuple[object, ...]) -> Iterable[sqlite3.Row]:
        try:
            return await self._connection.execute_fetchall(sql, parameters)
        except DRIVER_ERRORS as error:
            raise unavailable(error) from error

    @contextlib.asynccontextmanager
    async def _turn_to_write(self) -> AsyncIterator[None]:
        """Wait, at most DATABASE_TIMEOUT, until no other write of this store is queued on the connection."""
        if self._writing.locked():
            try:
                async with asyncio.timeout(self._timeout):
                    await self._writing.acquire()
            except TimeoutError:
                raise StoreUnavailable(f"sqlite: database busy: no turn to write within {self._timeout} s") from None
        else:
            await self._writing.acquire()
        try:
            yield
        finally:
            self._writing.release()

    async def add(self, new: NewItem) -> Item:
        """Stored with the other creates waiting for the same turn to write, in one INSERT: one trip to the thread."""
        stored: asyncio.Future[Item] = asyncio.get_running_loop().create_future()
        self._creates.append((new, stored))
        if len(self._creates) == 1:  # the first of a group
            self._insert_later()
        return await stored

    def _insert_later(self) -> None:
        """Start the task that stores the creates waiting now and those that come before its turn."""
        task = asyncio.create_task(self._insert_creates(), name="sqlite-creates")
        self._inserting.add(task)
        task.add_done_callback(self._inserting.discard)

    async def _insert_creates(self) -> None:
        """Wait for the turn to write, then store up to CREATE_GROUP of the waiting creates.

        Each gets its item, or the group's StoreUnavailable.
        """
        group: list[tuple[NewItem, asyncio.Future[Item]]] = []
        try:
            async with self._turn_to_write():
                group, self._creates = self._creates[:CREATE_GROUP], self._creates[CREATE_GROUP:]
                if not group:  # an earlier group's failure took them
                    return
                if self._creates:  # more than a group came: the rest are the next one's
                    self._insert_later()
                sql = f"INSERT INTO items (name, quantity) VALUES {', '.join(['(?, ?)'] * len(group))} {RETURNED}"
                rows = await self._fetch(sql, tuple(value for new, _ in group for value in (new.name, new.quantity)))
        except Exception as error:  # StoreUnavailable, or a bug: each create's request reports it
            if not group:  # no turn came: the whole waiting group fails
                group, self._creates = self._creates, []
            for _, stored in group:
                if not stored.done():  # else its request went away
                    stored.set_exception(error)
            return
        # One row per create, ids given in the order of the VALUES (AUTOINCREMENT), whatever RETURNING's order.
        for (_, stored), row in zip(group, sorted(rows, key=lambda row: int(row[0])), strict=True):
            if not stored.done():
                stored.set_result(Item(*row))

    async def add_once(self, new: NewItem, key: str) -> tuple[Item, bool]:
        while True:  # again only when the key in use expired and was forgotten in between
            now = time.time()
            created = True
            async with self._turn_to_write():
                try:
                    await self._connection.execute_fetchall(
                        ADD_ONCE, (key, new.digest(), new.name, new.quantity, now, now - IDEMPOTENCY_KEY_TTL)
                    )
                except sqlite3.IntegrityError:  # the key is in use
                    created = False
                except DRIVER_ERRORS as error:
                    raise unavailable(error) from error
            for digest, item_id in await self._fetch(USED_KEY, (key,)):
                return replayed(new, digest, item_id), created

    async def get(self, item_id: int) -> Item | None:
        for row in await self._fetch("SELECT id, name, quantity FROM items WHERE id = ?", (item_id,)):
            return Item(*row)
        return None

    async def list(self, limit: int, offset: int) -> list[Item]:
        sql = "SELECT id, name, quantity FROM items ORDER BY id LIMIT ? OFFSET ?"
        return [Item(*row) for row in await self._fetch(sql, (limit, offset))]

    async def delete(self, item_id: int) -> Item | None:
        async with self._turn_to_write():
            rows = await self._fetch("DELETE FROM items WHERE id = ? RETURNING id, name, quantity", (item_id,))
        for row in rows:
            return Item(*row)
        return None

    async def ping(self) -> None:
        """Check that a write would be taken, writing nothing: by the file system, then by SQLite."""
        if self._statvfs is not None:
            with database_errors():
                await asyncio.to_thread(check_file_system, self._folder, self._statvfs)
        async with self._turn_to_write():
            await self._fetch(WRITE_PROBE, ())

    async def events_after(self, after: int, limit: int) -> Sequence[ItemEvent]:
        sql = "SELECT id, type, item_id, name, quantity FROM events WHERE id > ? ORDER BY id LIMIT ?"
        return [ItemEvent(row[0], row[1], Item(*row[2:])) for row in await self._fetch(sql, (after, limit))]

    async def last_event_id(self) -> int:
        [[last]] = await self._fetch("SELECT coalesce(max(id), 0) FROM events", ())
        return int(last)

    async def watch(self, wake: Callable[[], None]) -> None:
        """Other processes may write the same file: look for their events every EVENT_POLL_INTERVAL."""
        while True:
            await asyncio.sleep(EVENT_POLL_INTERVAL)
            wake()


async def store_context(app: web.Application) -> AsyncIterator[None]:
    """Open the database named by DATABASE_URL, migrate it, close it at exit."""
    settings = app[SETTINGS]
    connection = await connect(settings.database_url, settings.database_timeout)
    try:
        await migrate(connection)
        app[STORE] = SqliteItemStore(connection, settings)
        yield
    finally:
        await connection.close()
