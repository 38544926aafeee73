"""Database faults: when PostgreSQL stops taking connections, or stops answering, requests get 503 within the
timeouts and the service recovers alone; a create whose answer was lost is not repeated by its retry; an event
listener whose connection goes silent notices, reconnects and catches up."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Awaitable
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import ClientResponse, web
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }} import migrations, store_postgresql
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.keys import SETTINGS
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.store_postgresql import Acquire, PostgresItemStore

from .support.clients import Client
from .support.postgresql_fixtures import TERMINATE, TEST_DATABASE_URL
from .support.tcp_proxy import TcpProxy, tcp_proxy

PENDING = migrations.pending
RECOVERY_TIMEOUT = 5.0
POLL = 0.05
TIMEOUT = 0.5  # DATABASE_TIMEOUT and DATABASE_POOL_TIMEOUT below: no answer may take longer than the two
MARGIN = 0.5  # for a busy machine
CONCURRENT = 20  # requests at once: more than the pool's connections
EVENTS_LOCK = 6118  # what migrations/postgresql/0002_create_events.sql locks to write events one at a time


async def cut_off(server: asyncpg.Connection, name: str, *, allowed: bool) -> None:
    """Open or close a database to new connections; closing also ends the open ones."""
    await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
    if not allowed:
        await server.execute(TERMINATE, name)


async def wait_until_ready(client: Client) -> None:
    """Poll /ready until it answers 200; fail after RECOVERY_TIMEOUT."""
    for _ in range(int(RECOVERY_TIMEOUT / POLL)):
        if (await client.get("/ready")).status == 200:
            return
        await asyncio.sleep(POLL)
    raise AssertionError(f"not ready {RECOVERY_TIMEOUT} s after the database came back")


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    """Function scope: a proxy to the test databases' server, which the test can hang."""
    url = urlsplit(TEST_DATABASE_URL)
    async with tcp_proxy((url.hostname or "127.0.0.1", url.port or 5432)) as proxy:
        yield proxy


def through(proxy: TcpProxy, url: str) -> str:
    """`url`, reached through `proxy`. No TLS: asyncpg's pool, cancelled mid-negotiation when it closes, can leave
    a future nobody reads (noise)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}", query="sslmode=disable").geturl()


@pytest.fixture
async def hung_client(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str], proxy: TcpProxy
) -> Client:
    """Function scope: a client of the service on the test's database, reached through `proxy`, with short timeouts."""
    changed = dataclasses.replace(
        settings,
        database_url=through(proxy, service_env["DATABASE_URL"]),
        database_timeout=TIMEOUT,
        database_pool_timeout=TIMEOUT,
    )
    return await aiohttp_client(create_app(changed))


async def timed(request: Awaitable[ClientResponse]) -> tuple[float, int]:
    """The seconds until `request` was answered, and its status."""
    started = time.monotonic()
    response = await request
    return time.monotonic() - started, response.status


@pytest.mark.heavy  # waits out real timeouts: about a second, so `--heavy` only
async def test_a_hung_server_gets_every_request_its_503_within_the_timeouts(
    hung_client: Client, proxy: TcpProxy
) -> None:
    assert (await hung_client.post("/items", json={"name": "before the fault"})).status == 201

    proxy.hang()
    ready = await hung_client.get("/ready")
    answers = await asyncio.gather(
        *(timed(hung_client.post("/items", json={"name": f"during {n}"})) for n in range(CONCURRENT))
    )

    assert (ready.status, ready.headers["Retry-After"]) == (503, "1")
    said = (await ready.json())["error"]["message"]
    assert re.fullmatch(rf"postgresql: no (answer|connection) within {TIMEOUT} s", said)
    assert {status for _, status in answers} == {503}
    assert max(seconds for seconds, _ in answers) < 2 * TIMEOUT + MARGIN
    proxy.resume()
    await wait_until_ready(hung_client)


@pytest.mark.heavy  # waits out real timeouts: about a second, so `--heavy` only
async def test_a_statement_past_the_timeout_is_stopped_by_the_server_too(
    hung_client: Client, service_env: dict[str, str]
) -> None:
    name = "waited for a lock"
    database = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        async with database.transaction():
            # The lock the events trigger takes: the service's INSERT runs, then waits for this transaction.
            await database.execute(f"SELECT pg_advisory_xact_lock({EVENTS_LOCK})")
            answer = await hung_client.post("/items", json={"name": name})
            await asyncio.sleep(TIMEOUT)  # the server's own limit has passed too
        await asyncio.sleep(TIMEOUT)  # an INSERT the server still ran would be committed by now
        stored = await database.fetchval("SELECT count(*) FROM items WHERE name = $1", name)
    finally:
        await database.close()

    assert answer.status == 503
    assert (await answer.json())["error"]["message"] == f"postgresql: no answer within {TIMEOUT} s"
    assert stored == 0


async def test_lost_database_gives_503_and_the_service_recovers_without_a_restart(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str], server: asyncpg.Connection
) -> None:
    url = service_env["DATABASE_URL"]
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    assert (await client.post("/items", json={"name": "before the fault"})).status == 201

    await cut_off(server, urlsplit(url).path.lstrip("/"), allowed=False)
    failed = await client.post("/items", json={"name": "during the fault"})
    ready = await client.get("/ready")

    assert failed.status == 503
    assert (await failed.json())["error"]["code"] == "database_unavailable"
    assert ready.status == 503
    assert (await ready.json())["error"]["message"].startswith("postgresql:")

    await cut_off(server, urlsplit(url).path.lstrip("/"), allowed=True)
    await wait_until_ready(client)
    items = (await (await client.get("/items")).json())["items"]

    assert [item["name"] for item in items] == ["before the fault"]


@pytest.mark.heavy  # waits out real timeouts: about a second, so `--heavy` only
async def test_a_create_answered_503_after_its_commit_is_not_repeated_by_its_retry(
    hung_client: Client, proxy: TcpProxy, service_env: dict[str, str]
) -> None:
    name = "an item whose answer is lost"
    key = {"Idempotency-Key": "d1c5a2b4-lost"}

    proxy.hung_on = name.encode()  # the server committed the INSERT and sent its row; the service never gets it
    lost = await hung_client.post("/items", json={"name": name}, headers=key)
    proxy.hung_on = None
    proxy.resume()
    await wait_until_ready(hung_client)
    [stored] = [item for item in (await (await hung_client.get("/items")).json())["items"] if item["name"] == name]
    retry = await hung_client.post("/items", json={"name": name}, headers=key)

    assert lost.status == 503  # the client cannot know the item was stored: it retries
    assert (retry.status, await retry.json()) == (201, stored)
    assert retry.headers["Idempotent-Replayed"] == "true"
    database = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        assert await database.fetchval("SELECT count(*) FROM items WHERE name = $1", name) == 1
        assert await database.fetchval("SELECT count(*) FROM events WHERE item_id = $1", stored["id"]) == 1
    finally:
        await database.close()


async def test_a_listener_whose_connection_goes_silent_reconnects_and_catches_up(
    acquire: Acquire, settings: Settings, proxy: TcpProxy, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy between the listener and the server stops carrying its bytes but keeps both sockets open: the
    listener must notice (its check gets no answer), reconnect and wake the hub again to catch up."""
    monkeypatch.setattr(store_postgresql, "LISTENER_CHECK_EVERY", 0.05)
    monkeypatch.setattr(store_postgresql, "CONNECT_TIMEOUT", 0.1)  # a slower connect is retried, so never flaky
    wakes: asyncio.Queue[None] = asyncio.Queue()
    store = PostgresItemStore(acquire, settings, listen_url=through(proxy, database_url))
    watcher = asyncio.create_task(store.watch(lambda: wakes.put_nowait(None)))
    try:
        await asyncio.wait_for(wakes.get(), RECOVERY_TIMEOUT)  # listening, caught up once
        proxy.silence()
        await asyncio.wait_for(wakes.get(), RECOVERY_TIMEOUT)  # noticed, reconnected, caught up again
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


@pytest.mark.heavy  # waits out real timeouts: about a second, so `--heavy` only
async def test_migrations_are_not_bound_by_the_statement_timeout(
    settings: Settings, service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = migrations.Migration("9999_slow", f"SELECT pg_sleep({3 * TIMEOUT})")
    monkeypatch.setattr(migrations, "pending", lambda dialect, applied: [*PENDING(dialect, applied), slow])
    app = web.Application()
    app[SETTINGS] = dataclasses.replace(settings, database_url=service_env["DATABASE_URL"], database_timeout=TIMEOUT)
    context = store_postgresql.store_context(app)

    await anext(context)  # migrated, slow one included
    with pytest.raises(StopAsyncIteration):
        await anext(context)
