"""The pool the PostgreSQL store borrows connections from: what borrowing one costs, who gets one first, how long."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from {{ cookiecutter.package_name }}.items import StoreUnavailable
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.store_postgresql import PostgresItemStore, open_pool


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
        self.lent_to: list[str] = []  # the names of the borrowing tasks, in lending order

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[asyncpg.Connection]:
        if self.out:
            turn = asyncio.get_running_loop().create_future()
            self.waiting.append(turn)
            await turn  # handed over still out
        self.out = True
        task = asyncio.current_task()
        assert task is not None
        self.lent_to.append(task.get_name())
        try:
            yield self.connection
        finally:
            if self.waiting:
                self.waiting.pop().set_result(None)
            else:
                self.out = False


async def test_statements_waiting_for_a_connection_get_one_in_arrival_order(database: asyncpg.Connection) -> None:
    """With every connection out, the next one given back goes to the statement that has waited longest.

    Whatever the pool's own order: asyncpg's lets a request that just came take a connection given back before one
    that waited, and under load some waited ten times the median or more.
    """
    lender = NewestFirst(database)
    store = PostgresItemStore(lender.lend, Settings(), capacity=1)

    # Tasks start in the order made: the first borrows the connection, the others wait for it in turn.
    await asyncio.gather(*(asyncio.create_task(store.get(1), name=str(n)) for n in range(4)))

    assert lender.lent_to == ["0", "1", "2", "3"]


POOL_TIMEOUT = 1.0  # DATABASE_POOL_TIMEOUT below
HELD = 0.9 * POOL_TIMEOUT  # how long the first borrower takes to get its connection, while the second waits its turn


class SlowThenHung:
    """Lends one connection, HELD seconds after asked; after that, making one anew hangs as a lost server's would.

    Until the pool's own limit: asyncpg gives up a connection attempt after DATABASE_POOL_TIMEOUT.
    """

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.lent = False

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[asyncpg.Connection]:
        if self.lent:
            await asyncio.sleep(POOL_TIMEOUT)
            raise TimeoutError
        self.lent = True
        await asyncio.sleep(HELD)
        yield self.connection


async def test_a_statement_that_waited_its_turn_gets_no_second_pool_timeout_to_connect(
    database: asyncpg.Connection,
) -> None:
    """DATABASE_POOL_TIMEOUT bounds the wait for a connection as a whole: the turn and making the connection.

    The turn comes after HELD; were the pool's own limit counted from then, the 503 would come after HELD plus the
    pool timeout. A wait that started later than it must is the one error this bound allows for.
    """
    store = PostgresItemStore(SlowThenHung(database).lend, Settings(database_pool_timeout=POOL_TIMEOUT), capacity=1)
    loop = asyncio.get_running_loop()

    async def refusal_after_its_turn() -> tuple[str, float]:
        started = loop.time()
        with pytest.raises(StoreUnavailable) as refused:
            await store.get(1)
        return str(refused.value), loop.time() - started

    # Tasks start in the order made: the first takes the one turn, the second waits for it.
    first = asyncio.create_task(store.get(1))
    said, waited = await asyncio.create_task(refusal_after_its_turn())
    await first

    assert said == f"postgresql: no connection within {POOL_TIMEOUT} s"
    assert waited < POOL_TIMEOUT + HELD / 2
