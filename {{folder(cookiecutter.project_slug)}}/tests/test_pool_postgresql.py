"""The pool the PostgreSQL store borrows connections from: what borrowing one costs, who gets one first, how long."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest

from {{ cookiecutter.package_name }}.items import StoreUnavailable
from {{ cookiecutter.package_name }}.lender import Acquire, Lender
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.store_postgresql import PostgresItemStore, migrate, open_pool

from .support.postgresql_fixtures import NewDatabase


def one_at_a_time(acquire: Acquire, pool_timeout: float = Settings().database_pool_timeout) -> PostgresItemStore:
    """A store whose statements borrow from `acquire` one at a time, waiting at most `pool_timeout` for their turn."""
    return PostgresItemStore(Lender(acquire, 1, pool_timeout), Settings())  # the lender's timeout is the one told


async def test_giving_a_connection_back_sends_the_server_nothing(database_url: str) -> None:
    """The service's statements change no session state, so the pool does not reset one: no `RESET ALL` round trip.

    asyncpg's default reset would send one more statement each time a connection is given back: half the round trips
    of a read.
    """
    pool = await open_pool(Settings(database_url=database_url))
    sent: list[str] = []
    try:
        async with pool.acquire() as connection:
            connection.add_query_logger(lambda query: sent.append(query.query))
            await connection.fetch("SELECT 1")
        # Given back: the logger stays on the connection, so it would log the reset.
    finally:
        await pool.close()

    assert sent == ["SELECT 1"]


class NewestFirst:
    """Lends one connection, and when it comes back, to the newest of those waiting: as unfair as a pool can be."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.out = False
        self.waiting: list[asyncio.Future[None]] = []
        self.lent = 0

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[asyncpg.Connection]:
        if self.out:
            turn = asyncio.get_running_loop().create_future()
            self.waiting.append(turn)
            await turn  # handed over still out
        self.out = True
        self.lent += 1
        try:
            yield self.connection
        finally:
            if self.waiting:
                self.waiting.pop().set_result(None)
            else:
                self.out = False


async def test_statements_waiting_for_a_connection_get_it_in_arrival_order_straight_from_the_last(
    database: asyncpg.Connection,
) -> None:
    """With every connection out, the next one given back goes to the statement that has waited longest.

    Whatever the pool's own order: asyncpg's lets a request that just came take a connection given back before one
    that waited, and under load some waited ten times the median or more. And it goes to it directly: giving a
    connection back to asyncpg's pool costs a task and a timer, and borrowing it again as much.
    """
    newest_first = NewestFirst(database)
    store = one_at_a_time(newest_first.lend)
    done: list[str] = []

    # Tasks start in the order made: the first borrows the connection, the others wait for it in turn.
    statements = [asyncio.create_task(store.get(1), name=str(n)) for n in range(4)]
    for statement in statements:
        statement.add_done_callback(lambda task: done.append(task.get_name()))
    await asyncio.gather(*statements)

    assert done == ["0", "1", "2", "3"]
    assert newest_first.lent == 1


# The sessions of a database waiting for a lock, and how to end them.
LOCKED_OUT = "FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
POLL = 0.01


async def test_a_connection_whose_session_ended_is_not_handed_on_and_the_next_statement_gets_a_new_one(
    new_database: NewDatabase,
) -> None:
    """The server ends a session mid-statement while another statement waits for its connection.

    asyncpg's pool takes a connection that closed back from the proxy that lent it, which then answers nothing, not
    even whether it is closed: the statement gets its 503, and the one waiting a new connection, not a 500 or a wait.
    """
    url = await new_database()
    locker = await asyncpg.connect(url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    store = one_at_a_time(pool.acquire)
    try:
        await migrate(locker)
        async with locker.transaction():
            await locker.execute("LOCK TABLE items")
            first = asyncio.create_task(store.get(1))  # waits for the lock
            second = asyncio.create_task(store.get(1))  # waits for the first's connection
            while not await locker.fetchval(f"SELECT count(*) {LOCKED_OUT}"):  # noqa: ASYNC110 - the server's view
                await asyncio.sleep(POLL)
            await locker.execute(f"SELECT pg_terminate_backend(pid) {LOCKED_OUT}")
        with pytest.raises(StoreUnavailable, match="the connection was lost before the answer came"):
            await first
        assert await second is None
    finally:
        await pool.close()
        await locker.close()


WAIT = 0.2  # the lender's timeout below


async def test_each_wait_for_a_connection_ends_at_its_own_deadline(database: asyncpg.Connection) -> None:
    """One timer serves every wait: when it ends the first, it is armed again for the next, which came later."""

    @contextlib.asynccontextmanager
    async def lend() -> AsyncIterator[asyncpg.Connection]:
        yield database

    lender = Lender(lend, capacity=1, timeout=WAIT)
    held = await lender.borrow()  # the one place, kept until the end
    first = asyncio.create_task(lender.borrow())
    await asyncio.sleep(WAIT / 2)
    second = asyncio.create_task(lender.borrow())  # its deadline comes after the timer has ended the first's wait
    async with asyncio.timeout(10 * WAIT):  # a wait the timer forgets would go on until another came
        waits = await asyncio.gather(first, second, return_exceptions=True)
    await lender.give_back(*held)

    assert [type(wait) for wait in waits] == [TimeoutError, TimeoutError]


class BreaksAsGivenBack:
    """Lends the one test connection; giving it back fails, as closing a connection at its release can.

    asyncpg closes one as it is given back once it has run its query limit, or was marked to expire.
    """

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[asyncpg.Connection]:
        yield self.connection
        raise ConnectionResetError("reset as it closed")


async def test_a_connection_that_breaks_as_it_is_given_back_leaves_the_answer_and_the_place(
    database: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """The statement's answer stands (one WARNING says what broke), and the place is free for the next statement."""
    store = one_at_a_time(BreaksAsGivenBack(database).lend)

    answers = [await store.get(1), await store.get(1)]  # the second needs the place the first gave back

    assert answers == [None, None]
    said = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert said == ["postgresql: a connection broke as it was given back (reset as it closed); the answer stands"] * 2


POOL_TIMEOUT = 1.0  # DATABASE_POOL_TIMEOUT below
HELD = 0.9 * POOL_TIMEOUT  # how long the first statement takes to get its connection, while the second waits its turn


class LostThenHung:
    """Lends, HELD seconds after asked, a connection that was lost; making one anew then hangs, as with a lost server.

    Until the pool's own limit: asyncpg gives up a connection attempt after DATABASE_POOL_TIMEOUT.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.lent = False

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[asyncpg.Connection]:
        if self.lent:
            await asyncio.sleep(POOL_TIMEOUT)
            raise TimeoutError
        self.lent = True
        connection = await asyncpg.connect(self.database_url)
        await connection.close()
        await asyncio.sleep(HELD)
        yield connection


async def test_a_statement_that_waited_its_turn_gets_no_second_pool_timeout_to_connect(database_url: str) -> None:
    """DATABASE_POOL_TIMEOUT bounds the wait for a connection as a whole: the turn and making the connection.

    The first statement's connection was lost, so the second, whose turn comes after HELD, must make one anew (a
    lost connection is never handed on). Were the pool's own limit counted from then, its 503 would come after HELD
    plus the pool timeout. A wait that started later than it must is the one error this bound allows for.
    """
    store = one_at_a_time(LostThenHung(database_url).lend, POOL_TIMEOUT)
    loop = asyncio.get_running_loop()

    async def refusal_after_its_turn() -> tuple[str, float]:
        started = loop.time()
        with pytest.raises(StoreUnavailable) as refused:
            await store.get(1)
        return str(refused.value), loop.time() - started

    # Tasks start in the order made: the first takes the one place, the second waits for it.
    first = asyncio.create_task(store.get(1))
    said, waited = await asyncio.create_task(refusal_after_its_turn())
    with pytest.raises(StoreUnavailable, match="the connection was lost before the answer came"):
        await first

    assert said == f"postgresql: no connection within {POOL_TIMEOUT} s"
    assert waited < POOL_TIMEOUT + HELD / 2
