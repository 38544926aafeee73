"""Items in PostgreSQL through an asyncpg pool.

The store borrows a connection per statement from a Lender (lender.py: in
arrival order, for at most DATABASE_POOL_TIMEOUT), and every statement
commits on its own and may run for DATABASE_TIMEOUT: with a server that
stopped answering, every request gets its 503 within the two.
Once a statement's answer is in hand it is what the caller gets, whatever
happens to the connection next; a write whose connection is lost before its
answer came gets a 503 that says it may have been done. A write's event is
added to an inbox by a trigger in the same transaction, with no lock, so
writers never wait for each other; it gets its id after the commit, when
the store next reads events, from `number_events`
(migrations/postgresql/0004_number_events_after_commit.sql), which sends a
NOTIFY. Every process LISTENs on a connection of its own, catches up
whenever it reconnects, and numbers events every NUMBER_EVERY seconds, for a
write whose process died before it could.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import asyncpg
from aiohttp import web

from . import migrations
from .items import IDEMPOTENCY_KEY_TTL, Item, ItemEvent, NewItem, StoreUnavailable, replayed
from .keys import SETTINGS, STORE
from .lender import CONNECTION_ERRORS, Connection, Lender, said
from .settings import Settings

POOL_SIZE = (2, 10)  # connections kept open, at most
CONNECT_TIMEOUT = 5.0
MIGRATION_LOCK = 0x17E5  # pg_advisory_xact_lock key: one migrator at a time
EVENT_CHANNEL = "item_events"  # what the events trigger NOTIFYs
RECONNECT_DELAY = (0.1, 5.0)  # seconds before the listener reconnects: first, then doubling up to the last
# A listener only receives, so a connection that went silent without closing (a NAT or firewall forgetting it, a
# server that vanished) would never be noticed: after this many quiet seconds it asks the server to answer, within
# CONNECT_TIMEOUT, or reconnects (and catches up).
LISTENER_CHECK_EVERY = 10.0
NUMBER_EVERY = 1.0  # seconds: the longest an event committed by a process that died, or by hand, waits for its number
IDLE_SESSION_TIMEOUT_SINCE = (14, 0)  # the server version that can end idle sessions (and so the listener's)

log = logging.getLogger(__name__)

# The server's errors that end the session: a statement they stop may have committed just before.
SESSION_ENDED = (asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.PostgresConnectionError)
# What asyncpg raises for a URL it cannot use (a port that is not a number or out of range, a broken IPv6 address).
UNUSABLE_URL = (ValueError, OverflowError)


def unavailable(error: Exception) -> StoreUnavailable:
    """The StoreUnavailable that reports a driver error."""
    return StoreUnavailable(f"postgresql: {said(error)}")


def refused(error: Exception) -> bool:
    """Whether a statement that failed with `error` certainly changed nothing: the server refused it, session intact."""
    return isinstance(error, asyncpg.PostgresError) and not isinstance(error, SESSION_ENDED)


def no_connection(seconds: float) -> StoreUnavailable:
    """The StoreUnavailable for a statement that got no connection within `seconds`."""
    return StoreUnavailable(f"postgresql: no connection within {seconds} s")


def unanswered(what: str, if_lost: str | None) -> StoreUnavailable:
    """The StoreUnavailable for a statement whose answer never came; a write's adds `if_lost`: it may have committed."""
    return StoreUnavailable(f"postgresql: {what}; {if_lost}" if if_lost else f"postgresql: {what}")


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Turn the driver's errors into StoreUnavailable (at start-up: queries use a plain try, which costs less)."""
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
# Whether a write would be refused (a standby, or default_transaction_read_only), in one round trip that writes
# nothing. It reads the items table too, none of its rows: a schema change that locks it keeps the service unready.
PING = "SELECT current_setting('transaction_read_only') = 'on', EXISTS (SELECT FROM items WHERE false)"
# What a 503 adds when a write's connection was lost before its answer came.
MAY_BE_STORED = "the item may have been stored: retry with the same Idempotency-Key, which stores it once"
MAY_BE_STORED_NO_KEY = "the item may have been stored: look for it before sending it again"
MAY_BE_DELETED = "the item may have been deleted: a retry answers 404 if it was"


class PostgresItemStore:
    """The items table, reached through borrowed connections."""

    def __init__(self, lender: Lender, settings: Settings, listen_url: str | None = None) -> None:
        """Borrow connections from `lender` (every store of a pool shares the pool's), in arrival order.

        `listen_url` is where `watch` LISTENs for events (None: no other
        process writes, and `watch` returns at once).
        """
        self._lender = lender
        self._timeout = settings.database_timeout
        self._listen_url = listen_url
        self._unnumbered = True  # a write may have left an event in the inbox: number it before reading
        self._numbering: asyncio.Future[bool] | None = None  # the numbering under way: whether it was done

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """The rows of a statement that only reads."""
        return await self._run(sql, args, if_lost=None)

    async def _write(self, if_lost: str, sql: str, *args: object) -> list[asyncpg.Record]:
        """The rows of a statement that writes; `if_lost` says what may have happened when its answer never came."""
        try:
            return await self._run(sql, args, if_lost)
        finally:
            self._unnumbered = True

    async def _run(self, sql: str, args: Sequence[object], if_lost: str | None) -> list[asyncpg.Record]:
        """The rows of `sql` on a borrowed connection, or StoreUnavailable saying why there are none."""
        try:
            lease, connection = await self._lender.borrow()
        except TimeoutError:
            raise no_connection(self._lender.timeout) from None
        except CONNECTION_ERRORS as error:
            raise unavailable(error) from error
        try:
            return await connection.fetch(sql, *args, timeout=self._timeout)
        except TimeoutError:
            connection.terminate()  # it may never answer: close it now rather than wait to reset it
            raise unanswered(f"no answer within {self._timeout} s", if_lost) from None
        except CONNECTION_ERRORS as error:
            if refused(error):
                raise unavailable(error) from error
            raise unanswered(f"the connection was lost before the answer came ({said(error)})", if_lost) from error
        finally:
            await self._lender.give_back(lease, connection)

    async def add(self, new: NewItem) -> Item:
        sql = "INSERT INTO items (name, quantity) VALUES ($1, $2) RETURNING id, name, quantity"
        [row] = await self._write(MAY_BE_STORED_NO_KEY, sql, new.name, new.quantity)
        return Item(*row)

    async def add_once(self, new: NewItem, key: str) -> tuple[Item, bool]:
        args = (key, new.digest(), new.name, new.quantity, IDEMPOTENCY_KEY_TTL)
        while True:  # again only when the key in use expired and was forgotten in between
            for row in await self._write(MAY_BE_STORED, ADD_ONCE, *args):
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
        sql = "DELETE FROM items WHERE id = $1 RETURNING id, name, quantity"
        for row in await self._write(MAY_BE_DELETED, sql, item_id):
            return Item(*row)
        return None

    async def ping(self) -> None:
        """Check that the items table answers and that the database takes writes."""
        [[read_only, _]] = await self._fetch(PING)
        if read_only:
            raise StoreUnavailable(
                "postgresql: the database takes no writes (transaction_read_only is on: "
                "a standby, or default_transaction_read_only)"
            )

    async def events_after(self, after: int, limit: int) -> Sequence[ItemEvent]:
        await self._number_events()
        sql = "SELECT id, type, item_id, name, quantity FROM events WHERE id > $1 ORDER BY id LIMIT $2"
        return [ItemEvent(row[0], row[1], Item(*row[2:])) for row in await self._fetch(sql, after, limit)]

    async def last_event_id(self) -> int:
        return await self._number_events() or int((await self._fetch("SELECT coalesce(max(id), 0) FROM events"))[0][0])

    async def _number_events(self) -> int | None:
        """Number the events committed by every write that ended before this call; the newest id, if it numbered.

        None when no write ended since the last numbering began, or when the
        numbering under way did it (it began after the last write ended).
        """
        if not self._unnumbered:
            under_way = self._numbering
            if under_way is None:
                return None
            await asyncio.wait([under_way])
            if under_way.result():
                return None
        self._unnumbered = False  # a write that ends from here on is numbered by the next call
        self._numbering = numbered = asyncio.get_running_loop().create_future()
        try:
            [[newest]] = await self._fetch("SELECT number_events()")
        except BaseException:
            self._unnumbered = True
            numbered.set_result(False)
            raise
        else:
            numbered.set_result(True)
        finally:
            if self._numbering is numbered:
                self._numbering = None
        return int(newest)

    async def watch(self, wake: Callable[[], None]) -> None:
        """LISTEN for number_events' NOTIFY on a connection of its own, and have events numbered every NUMBER_EVERY.

        When the connection is lost, reconnect (and catch up): soon at first,
        then less and less often.
        """
        if self._listen_url is None:
            return
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._number_now_and_then(wake), name="event-numbering")
            await self._listen(self._listen_url, wake)

    async def _number_now_and_then(self, wake: Callable[[], None]) -> None:
        """Every NUMBER_EVERY, have the next read (`wake` asks for one) number what no one else would.

        Events committed by a process killed right after its write, or by a
        write made by hand.
        """
        while True:
            await asyncio.sleep(NUMBER_EVERY)
            self._unnumbered = True
            wake()

    async def _listen(self, url: str, wake: Callable[[], None]) -> None:
        """LISTEN until cancelled, reconnecting."""
        delay = RECONNECT_DELAY[0]
        while True:
            try:
                connection = await connect_cleanly(url)
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


async def connect_cleanly(url: str) -> asyncpg.Connection:
    """A new connection to `url`; cancelled, it lets the attempt end and closes what it made.

    asyncpg cancelled during its TLS negotiation leaves a future with an
    exception nobody retrieves, which asyncio then logs as an error with a
    traceback (a service whose port is taken would not stop with one line).
    """
    attempt = asyncio.ensure_future(asyncpg.connect(url, timeout=CONNECT_TIMEOUT))
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        with contextlib.suppress(*CONNECTION_ERRORS):
            (await attempt).terminate()
        raise


async def listen(connection: asyncpg.Connection, wake: Callable[[], None]) -> None:
    """Call `wake` on every event NOTIFY, and once at the start (to catch up).

    Return when the connection is lost; raise TimeoutError when it stops answering.
    """
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    if connection.get_server_version() >= IDLE_SESSION_TIMEOUT_SINCE:
        await connection.execute("SET idle_session_timeout = 0")  # it waits in silence by design: never idle
    await connection.add_listener(EVENT_CHANNEL, lambda *_: wake())
    wake()
    while not lost.is_set():
        try:
            await asyncio.wait_for(lost.wait(), LISTENER_CHECK_EVERY)
        except TimeoutError:
            await connection.execute("SELECT 1", timeout=CONNECT_TIMEOUT)
    log.warning("event listener: the connection was closed; reconnecting")


async def connect_to_migrate(url: str) -> asyncpg.Connection:
    """A connection to DATABASE_URL without the statement timeouts: a schema change may take as long as it needs.

    An empty or unusable URL is refused with StoreUnavailable saying why (empty, asyncpg would connect wherever its
    defaults and the PG* variables point: another database than meant).
    """
    if not url:
        raise StoreUnavailable("postgresql: DATABASE_URL is empty; set it to a URL such as postgresql://user@host/name")
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    except UNUSABLE_URL as error:
        raise StoreUnavailable(f"postgresql: DATABASE_URL cannot be used: {error}") from None
    except asyncpg.InvalidCatalogNameError as error:  # the server answers, but has no database of that name
        how = "create it first, with `createdb` or CREATE DATABASE, on the server DATABASE_URL names"
        raise StoreUnavailable(f"postgresql: {error}; {how}") from None
    except CONNECTION_ERRORS as error:
        raise unavailable(error) from error


async def open_pool(settings: Settings) -> asyncpg.Pool:
    """The pool of connections to DATABASE_URL the store borrows from."""
    with database_errors():
        return await asyncpg.create_pool(
            settings.database_url,
            min_size=POOL_SIZE[0],
            max_size=POOL_SIZE[1],
            # A connection the pool makes for a request (the first use of one of its places, or after one broke)
            # comes within the pool timeout, as one waited for does.
            timeout=settings.database_pool_timeout,
            command_timeout=settings.database_timeout,
            # The server stops a statement at the same limit, so work no one waits for does not go on.
            server_settings={"statement_timeout": str(round(settings.database_timeout * 1000))},
            reset=keep_session,
        )


async def keep_session(connection: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, beyond asyncpg's own step (it rolls back an open transaction).

    Nothing: the store's statements change no session state (no SET, LISTEN or session-level lock), so asyncpg's
    default reset, `RESET ALL` and the like, would be one more round trip per borrowing that restores nothing. Code
    that changes a pooled session's state must undo it before giving the connection back.
    """


async def store_context(app: web.Application) -> AsyncIterator[None]:
    """Migrate DATABASE_URL, open a pool to it, close the pool at exit."""
    settings = app[SETTINGS]
    url = settings.database_url
    migrator = await connect_to_migrate(url)
    try:
        await migrate(migrator)
    finally:
        await migrator.close()
    pool = await open_pool(settings)
    try:
        lender = Lender(pool.acquire, POOL_SIZE[1], settings.database_pool_timeout)  # for every store of the pool
        app[STORE] = PostgresItemStore(lender, settings, listen_url=url)
        yield
    finally:
        await pool.close()
