"""The pool the PostgreSQL store borrows connections from: what borrowing one costs the server."""

from __future__ import annotations

from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.store_postgresql import open_pool


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
