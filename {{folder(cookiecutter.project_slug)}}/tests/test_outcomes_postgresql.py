"""Answers that say what happened when a write's connection to PostgreSQL breaks.

A write whose answer came back is answered with it, whatever happens to the connection next; one whose connection
broke before the answer came is a 503 that says it may have been done, and what makes a retry safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .support.clients import Client
from .support.postgresql_fixtures import TERMINATE, TEST_DATABASE_URL
from .support.postgresql_proxy import AnswerProxy, Cut, answer_proxy, through

INSERTED, DELETED = b"INSERT 0 1", b"DELETE 1"  # the tags that end a create's and a delete's answer


@pytest.fixture
async def proxy() -> AsyncIterator[AnswerProxy]:
    """Function scope: a proxy to the test databases' server, which the test tells which answer to cut."""
    url = urlsplit(TEST_DATABASE_URL)
    async with answer_proxy((url.hostname or "127.0.0.1", url.port or 5432)) as proxy:
        yield proxy


@pytest.fixture
async def cut_client(
    proxy: AnswerProxy, aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str]
) -> Client:
    """Function scope: a client of the service on the test's own database, reached through `proxy`.

    The proxy comes first, so it is closed last: the service's connections are not cut as it stops.
    """
    url = through(proxy.port, service_env["DATABASE_URL"])
    return await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))


async def stored(service_env: dict[str, str], name: str) -> int:
    """How many items named `name` the database holds, asked on a connection of the test's own."""
    database = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        return int(await database.fetchval("SELECT count(*) FROM items WHERE name = $1", name))
    finally:
        await database.close()


async def answer_of(
    request: Awaitable[ClientResponse], proxy: AnswerProxy, server: asyncpg.Connection, when: Cut
) -> ClientResponse:
    """`request`'s answer, once the cut `proxy` was told of happened (for Cut.BY_SERVER: the session terminated)."""
    answer = asyncio.ensure_future(request)
    if when is Cut.BY_SERVER:
        racing: list[asyncio.Future[Any]] = [answer, proxy.held]
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        if proxy.held.done():
            await server.execute("SELECT pg_terminate_backend($1)", proxy.held.result())
    return await answer


@pytest.mark.parametrize("when", [Cut.AFTER, Cut.BY_SERVER], ids=["closed", "terminated"])
async def test_a_write_whose_connection_ends_right_after_its_answer_gets_that_answer(
    cut_client: Client,
    proxy: AnswerProxy,
    server: asyncpg.Connection,
    service_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    when: Cut,
) -> None:
    """The session ends as the connection goes back to the pool: the answer in hand stands, and one line says so."""
    name = "committed, then its connection closed"
    proxy.cut(INSERTED, when)
    created = await answer_of(cut_client.post("/items", json={"name": name}), proxy, server, when)
    assert created.status == 201
    assert await stored(service_env, name) == 1

    proxy.cut(DELETED, when)
    deleted = await answer_of(cut_client.delete(created.headers["Location"]), proxy, server, when)
    assert deleted.status == 204
    assert await stored(service_env, name) == 0
    assert proxy.cuts == 2
    assert (await cut_client.get(created.headers["Location"])).status == 404  # the pool replaced what broke
    assert [record for record in caplog.records if record.exc_info] == []  # what broke is one line, no traceback


async def test_a_create_whose_answer_never_came_is_a_503_saying_it_may_be_stored_and_its_retry_gets_it(
    cut_client: Client, proxy: AnswerProxy, service_env: dict[str, str]
) -> None:
    name = "committed, its answer lost"
    key = {"Idempotency-Key": "f3a9c1d7-answer-lost"}

    proxy.cut(INSERTED, Cut.BEFORE)
    lost = await cut_client.post("/items", json={"name": name}, headers=key)
    retry = await cut_client.post("/items", json={"name": name}, headers=key)

    assert (proxy.cuts, lost.status) == (1, 503)
    message = (await lost.json())["error"]["message"]
    assert message.startswith("postgresql: the connection was lost before the answer came")
    assert message.endswith("the item may have been stored: retry with the same Idempotency-Key, which stores it once")
    assert await stored(service_env, name) == 1  # it was: only a retry with the key is safe
    assert (retry.status, retry.headers["Idempotent-Replayed"]) == (201, "true")


async def test_a_delete_whose_answer_never_came_is_a_503_saying_it_may_be_done_and_its_retry_is_a_404(
    cut_client: Client, proxy: AnswerProxy, service_env: dict[str, str]
) -> None:
    name = "deleted, its answer lost"
    location = (await cut_client.post("/items", json={"name": name})).headers["Location"]

    proxy.cut(DELETED, Cut.BEFORE)
    lost = await cut_client.delete(location)
    retry = await cut_client.delete(location)

    assert (proxy.cuts, lost.status) == (1, 503)
    message = (await lost.json())["error"]["message"]
    assert message.endswith("the item may have been deleted: a retry answers 404 if it was")
    assert await stored(service_env, name) == 0
    assert retry.status == 404


WRITERS = 20
CREATES = 15  # each writer's; it deletes every other item it created
END_SESSIONS_EVERY = 0.3  # seconds between two rounds of ending every session of the service's database
MAY_HAVE_BEEN = "may have been"  # what a 503 says when the write's outcome is unknown


@dataclasses.dataclass
class Write:
    """A write sent while sessions are ended, and its answer."""

    kind: str  # create or delete
    name: str
    status: int
    message: str  # the 503's

    def holds(self) -> bool | None:
        """Whether the database must hold the item after this write; None when the answer said it may or may not."""
        if MAY_HAVE_BEEN in self.message:
            return None
        return (self.kind, self.status) in {("create", 201), ("delete", 503)}


async def noted(kind: str, name: str, response: ClientResponse) -> Write:
    """The Write `response` answered."""
    message = (await response.json())["error"]["message"] if response.status == 503 else ""
    return Write(kind, name, response.status, message)


async def write_while_sessions_end(client: Client, writer: int) -> list[Write]:
    """Create CREATES items and delete every other one, one request at a time."""
    writes = []
    for n in range(CREATES):
        name = f"writer {writer}, item {n}"
        created = await client.post("/items", json={"name": name})
        writes.append(await noted("create", name, created))
        if created.status == 201 and n % 2:
            writes.append(await noted("delete", name, await client.delete(created.headers["Location"])))
    return writes


async def end_sessions_until(done: asyncio.Event, server: asyncpg.Connection, name: str) -> int:
    """End every session of database `name` every END_SESSIONS_EVERY seconds until `done`; return the rounds."""
    rounds = 0
    while not done.is_set():
        await server.execute(TERMINATE, name)
        rounds += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), END_SESSIONS_EVERY)
    return rounds


@pytest.mark.heavy  # hundreds of writes while sessions are ended every 0.3 s, so `--heavy` only
@pytest.mark.timeout(60)  # a few seconds quiet; far more with every core busy
async def test_while_sessions_end_every_0_3_s_no_503_denies_a_write_that_was_done(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str], server: asyncpg.Connection
) -> None:
    """Every answer agrees with what the database holds after: a 503 that may be wrong says so."""
    url = service_env["DATABASE_URL"]
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    done = asyncio.Event()
    ending = asyncio.create_task(end_sessions_until(done, server, urlsplit(url).path.lstrip("/")))
    try:
        answered = await asyncio.gather(*(write_while_sessions_end(client, n) for n in range(WRITERS)))
    finally:
        done.set()
        rounds = await ending
    database = await asyncpg.connect(url)
    try:
        held = {row["name"] for row in await database.fetch("SELECT name FROM items")}
    finally:
        await database.close()

    last = {write.name: write for writes in answered for write in writes}  # a delete comes after its create
    assert rounds > 1
    assert {write.status for write in last.values()} <= {201, 204, 503}
    assert [write for write in last.values() if write.holds() not in {None, write.name in held}] == []
