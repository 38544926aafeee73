"""Database faults: what the service does when PostgreSQL stops taking connections, answering or writes.

Requests get 503 within the timeouts and the service recovers alone; a create whose answer was lost is not repeated
by its retry, and its 503 says it may have been stored; `/ready` says why while the database takes no writes; an
event listener whose connection goes silent notices, reconnects and catches up, and keeps its session through the
server's idle timeout; a transaction left open holds back no event but its own; a DATABASE_URL the service cannot
use stops it with one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import ClientResponse, web
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }} import migrations, store_postgresql
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.keys import SETTINGS, STORE
from {{ cookiecutter.package_name }}.lender import Lender
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.store_postgresql import PostgresItemStore

from .support.clients import Client
from .support.postgresql_fixtures import TERMINATE, TEST_DATABASE_URL, NewDatabase
from .support.postgresql_proxy import through
from .support.service_process import launch, lines_said
from .support.tcp_proxy import TcpProxy, tcp_proxy

PENDING = migrations.pending
RECOVERY_TIMEOUT = 5.0
POLL = 0.05
TIMEOUT = 0.5  # DATABASE_TIMEOUT and DATABASE_POOL_TIMEOUT below: no answer may take longer than the two
POOL_SIZE = (1, 2)  # the hung client's connections: few, so requests queued turn by turn would wait long
CONCURRENT = 60  # requests at once: thirty times the pool's connections; queued turn by turn, the last waits 15 s
NUMBERING_LOCK = 6118  # the advisory lock number_events() takes
MARGIN = 4.0  # for a busy machine, far below the queued 15 s (a quiet machine's figure is a benchmark's, not a test's)


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


async def until_unready_saying(client: Client, reason: str) -> object:
    """Poll /ready until its 503 says `reason`, and return that error; fail after RECOVERY_TIMEOUT.

    The first answers after a fault may give another reason: a pooled connection the fault closed.
    """
    for _ in range(int(RECOVERY_TIMEOUT / POLL)):
        ready = await client.get("/ready")
        if ready.status == 503 and reason in (error := (await ready.json())["error"])["message"]:
            return error
        await asyncio.sleep(POLL)
    raise AssertionError(f"/ready did not say {reason!r} within {RECOVERY_TIMEOUT} s")


async def read_only(server: asyncpg.Connection, name: str, *, on: bool) -> None:
    """Make a database read-only, as a failover to a standby does, or writable again; its sessions are ended."""
    change = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
    await server.execute(f'ALTER DATABASE "{name}" {change}')
    await server.execute(TERMINATE, name)


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    """Function scope: a proxy to the test databases' server, which the test can hang."""
    url = urlsplit(TEST_DATABASE_URL)
    async with tcp_proxy((url.hostname or "127.0.0.1", url.port or 5432)) as proxy:
        yield proxy


@pytest.fixture
async def hung_client(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    service_env: dict[str, str],
    proxy: TcpProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> Client:
    """Function scope: a client of the service on the test's database, reached through `proxy`, with short timeouts."""
    monkeypatch.setattr(store_postgresql, "POOL_SIZE", POOL_SIZE)
    changed = dataclasses.replace(
        settings,
        database_url=through(proxy.port, service_env["DATABASE_URL"]),
        database_timeout=TIMEOUT,
        database_pool_timeout=TIMEOUT,
    )
    return await aiohttp_client(create_app(changed))


async def timed(request: Awaitable[ClientResponse]) -> tuple[float, int]:
    """The seconds until `request` was answered, and its status."""
    started = time.monotonic()
    response = await request
    return time.monotonic() - started, response.status


@pytest.mark.heavy  # waits out real timeouts, so `--heavy` only
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


WAITING_FOR_A_LOCK = """SELECT count(*) FROM pg_stat_activity
                        WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"""


async def until_a_statement_waits_for_a_lock(database: asyncpg.Connection) -> None:
    """Return once another session of `database` waits for a lock (no bound of its own: the test's time limit)."""
    while not await database.fetchval(WAITING_FOR_A_LOCK):  # noqa: ASYNC110 - the server's view is all there is
        await asyncio.sleep(POLL)


async def until_no_statement_waits_for_a_lock(database: asyncpg.Connection) -> None:
    """Return once no other session of `database` waits for a lock.

    Fail if one still does after RECOVERY_TIMEOUT (ten times the server's statement timeout).
    """
    for _ in range(int(RECOVERY_TIMEOUT / POLL)):
        if not await database.fetchval(WAITING_FOR_A_LOCK):
            return
        await asyncio.sleep(POLL)
    raise AssertionError(f"a statement still waits for a lock {RECOVERY_TIMEOUT} s on: the server never stopped it")


@pytest.mark.heavy  # waits out real timeouts, so `--heavy` only
async def test_a_statement_past_the_timeout_is_stopped_by_the_server_too(
    hung_client: Client, service_env: dict[str, str]
) -> None:
    name = "waited for a lock"
    database = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        async with database.transaction():
            # A lock no INSERT can share: the service's INSERT waits for this transaction.
            await database.execute("LOCK TABLE items IN SHARE MODE")
            answer = await hung_client.post("/items", json={"name": name})
            await until_no_statement_waits_for_a_lock(database)  # the server has stopped the INSERT
        stored = await database.fetchval("SELECT count(*) FROM items WHERE name = $1", name)
    finally:
        await database.close()

    assert answer.status == 503
    # The service's own limit and the server's are the same: which one answers first is a race, and either says why
    # (giving up first, the service cannot know whether the server went on to commit).
    said = {
        f"postgresql: no answer within {TIMEOUT} s; the item may have been stored: look for it before sending it again",
        "postgresql: canceling statement due to statement timeout",
    }
    assert (await answer.json())["error"]["message"] in said
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
    assert (await failed.json())["error"]["code"] == "unavailable"
    assert ready.status == 503
    assert (await ready.json())["error"]["message"].startswith("postgresql:")

    await cut_off(server, urlsplit(url).path.lstrip("/"), allowed=True)
    await wait_until_ready(client)
    items = (await (await client.get("/items")).json())["items"]

    assert [item["name"] for item in items] == ["before the fault"]


async def test_ready_is_a_503_saying_why_while_the_database_takes_no_writes_and_200_once_it_does(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str], server: asyncpg.Connection
) -> None:
    url = service_env["DATABASE_URL"]
    name = urlsplit(url).path.lstrip("/")
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    assert (await client.get("/ready")).status == 200

    await read_only(server, name, on=True)
    try:
        error = await until_unready_saying(client, "takes no writes")
        write = await client.post("/items", json={"name": "refused"})
    finally:
        await read_only(server, name, on=False)
    await wait_until_ready(client)

    assert error == {
        "code": "unavailable",
        "message": "postgresql: the database takes no writes "
        "(transaction_read_only is on: a standby, or default_transaction_read_only)",
    }
    assert write.status == 503
    assert (await client.post("/items", json={"name": "taken"})).status == 201


@pytest.mark.heavy  # waits out real timeouts, so `--heavy` only
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

    assert lost.status == 503  # the client cannot know the item was stored, and is told so: it retries
    assert (await lost.json())["error"]["message"] == (
        f"postgresql: no answer within {TIMEOUT} s; "
        "the item may have been stored: retry with the same Idempotency-Key, which stores it once"
    )
    assert (retry.status, await retry.json()) == (201, stored)
    assert retry.headers["Idempotent-Replayed"] == "true"
    database = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        assert await database.fetchval("SELECT count(*) FROM items WHERE name = $1", name) == 1
        # Its event, numbered or still in the inbox (one statement: one snapshot, so not counted in both or neither).
        recorded = """SELECT (SELECT count(*) FROM events WHERE item_id = $1)
                             + (SELECT count(*) FROM event_inbox WHERE item_id = $1)"""
        assert await database.fetchval(recorded, stored["id"]) == 1
    finally:
        await database.close()


async def test_a_listener_whose_connection_goes_silent_reconnects_and_catches_up(
    lender: Lender, settings: Settings, proxy: TcpProxy, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener whose connection goes silent notices, reconnects and wakes the hub again to catch up.

    A proxy between the listener and the server stops carrying its bytes but keeps both sockets open: the listener
    notices as its check gets no answer.
    """
    monkeypatch.setattr(store_postgresql, "LISTENER_CHECK_EVERY", 0.05)
    monkeypatch.setattr(store_postgresql, "CONNECT_TIMEOUT", 0.1)  # a slower connect is retried, so never flaky
    monkeypatch.setattr(store_postgresql, "NUMBER_EVERY", 100 * RECOVERY_TIMEOUT)  # only the listener wakes the hub
    wakes: asyncio.Queue[None] = asyncio.Queue()
    store = PostgresItemStore(lender, settings, listen_url=through(proxy.port, database_url))
    watcher = asyncio.create_task(store.watch(lambda: wakes.put_nowait(None)))
    try:
        await asyncio.wait_for(wakes.get(), RECOVERY_TIMEOUT)  # listening, caught up once
        proxy.silence()
        await asyncio.wait_for(wakes.get(), RECOVERY_TIMEOUT)  # noticed, reconnected, caught up again
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


IDLE_SESSION_TIMEOUT = 1000  # milliseconds: far above a connection's first statement, however busy the machine


async def test_the_event_listener_keeps_its_session_through_the_servers_idle_session_timeout(
    lender: Lender,
    settings: Settings,
    server: asyncpg.Connection,
    new_database: NewDatabase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server ends a session that idles past its timeout; the listener's, idle for longer, lives on.

    It never reconnects (its session is the same) and logs nothing.
    """
    url = await new_database()
    name = urlsplit(url).path.lstrip("/")
    await server.execute(f'ALTER DATABASE "{name}" SET idle_session_timeout = {IDLE_SESSION_TIMEOUT}')
    sessions = "SELECT pid FROM pg_stat_activity WHERE datname = $1"
    wakes: asyncio.Queue[None] = asyncio.Queue()
    store = PostgresItemStore(lender, settings, listen_url=url)
    watcher = asyncio.create_task(store.watch(lambda: wakes.put_nowait(None)))
    try:
        await asyncio.wait_for(wakes.get(), RECOVERY_TIMEOUT)  # listening, caught up once
        [listener] = await server.fetch(sessions, name)
        idler = await asyncpg.connect(url)
        try:
            ended = asyncio.Event()
            idler.add_termination_listener(lambda _: ended.set())
            await asyncio.wait_for(ended.wait(), RECOVERY_TIMEOUT)  # the server ended it, idle since the listener began
        finally:
            idler.terminate()
        left = await server.fetch(sessions, name)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    assert left == [listener]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "postgresql: DATABASE_URL is empty; set it to a URL such as postgresql://user@host/name"),
        ("postgresql://postgres@127.0.0.1:port/app", "postgresql: DATABASE_URL cannot be used: invalid literal"),
        # The event loop decides: refused (cannot be used) or tried (connection refused). One line either way.
        ("postgresql://postgres@127.0.0.1:-1/app", "postgresql: "),
        ("postgresql://postgres@[::1/app", "postgresql: DATABASE_URL cannot be used: Invalid IPv6 URL"),
    ],
    ids=["empty", "port not a number", "port out of range", "broken address"],
)
async def test_a_database_url_the_service_cannot_use_stops_it_with_one_line(url: str, message: str) -> None:
    """Empty, asyncpg would connect wherever its defaults point (and migrate another database than meant)."""
    process = await launch({"DATABASE_URL": url})
    async with asyncio.timeout(15):
        _, stderr = await process.communicate()

    lines = lines_said(stderr)
    assert process.returncode == 1
    assert len(lines) == 1, lines
    assert f"cannot start: {message}" in lines[0]


async def test_a_database_that_does_not_exist_stops_the_service_saying_how_to_create_it(
    server: asyncpg.Connection,
) -> None:
    url = urlsplit(TEST_DATABASE_URL)._replace(path="/no_such_database").geturl()

    process = await launch({"DATABASE_URL": url})
    async with asyncio.timeout(15):
        _, stderr = await process.communicate()

    how = "create it first, with `createdb` or CREATE DATABASE, on the server DATABASE_URL names"
    assert process.returncode == 1
    assert lines_said(stderr) == [
        f'{{ cookiecutter.package_name }}: cannot start: postgresql: database "no_such_database" does not exist; {how}'
    ]


class Rendezvous:
    """Holds each thread that arrives until `parties` have, or for `patience` seconds at most.

    Then it lets the thread go on either way: workers that can reach it together are made to (a race at its
    closest); one that must wait its turn is not stopped, only delayed.
    """

    def __init__(self, parties: int, patience: float) -> None:
        self.parties, self.patience = parties, patience
        self.arrived = 0
        self.changed = threading.Condition()

    def arrive(self) -> None:
        with self.changed:
            self.arrived += 1
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.arrived >= self.parties, self.patience)


@pytest.mark.heavy  # each worker waits its turn and the rendezvous' patience, so `--heavy` only
async def test_workers_starting_together_apply_each_migration_once(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = service_env["DATABASE_URL"]
    workers = [await asyncpg.connect(url) for _ in range(4)]
    together = Rendezvous(len(workers), patience=0.25)

    def pending_once_all_have_looked(dialect: str, applied: set[str]) -> list[migrations.Migration]:
        found = PENDING(dialect, applied)
        together.arrive()
        return found

    monkeypatch.setattr(migrations, "pending", pending_once_all_have_looked)
    try:
        await asyncio.gather(*(store_postgresql.migrate(worker) for worker in workers))
        versions = await workers[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await asyncio.gather(*(worker.close() for worker in workers))

    shipped = await asyncio.to_thread(migrations.load, "postgresql")  # reads files: off the loop
    assert [row["version"] for row in versions] == [migration.version for migration in shipped]


@pytest.mark.heavy  # waits out real timeouts, so `--heavy` only
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


async def test_a_transaction_left_open_holds_back_only_its_own_event(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str]
) -> None:
    """An item inserted by hand in a transaction left open: the service's writes meanwhile are delivered at once.

    Its event comes once it commits (numbered within NUMBER_EVERY, by no write of the service's), with a larger id
    than theirs, though its insert came first: a subscriber that has seen their ids misses nothing.
    """
    url = service_env["DATABASE_URL"]
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=RECOVERY_TIMEOUT) == {"type": "pong"}  # subscribed
        by_hand = await asyncpg.connect(url)
        try:
            async with by_hand.transaction():
                held = await by_hand.fetchval("INSERT INTO items (name, quantity) VALUES ('left open', 1) RETURNING id")
                meanwhile = await (await client.post("/items", json={"name": "meanwhile"})).json()
                delivered = await ws.receive_json(timeout=RECOVERY_TIMEOUT)
            committed = await ws.receive_json(timeout=RECOVERY_TIMEOUT)
        finally:
            await by_hand.close()

    assert delivered["item"] == meanwhile
    assert (committed["type"], committed["item"]["id"]) == ("item.created", held)
    assert held < meanwhile["id"]  # inserted first
    assert committed["id"] > delivered["id"]  # numbered later


async def test_the_newest_event_id_counts_a_write_that_a_numbering_under_way_numbers(
    aiohttp_client: AiohttpClient, settings: Settings, service_env: dict[str, str]
) -> None:
    """The newest event id, asked for while a numbering that began after a write waits for its lock, counts the write.

    It waits for that numbering, rather than answer from before it (saying the write's event is not there yet).
    """
    url = service_env["DATABASE_URL"]
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    store = client.app[STORE]
    numberer = await asyncpg.connect(url)
    try:
        await numberer.execute("SELECT pg_advisory_lock($1)", NUMBERING_LOCK)
        created = await (await client.post("/items", json={"name": "numbered meanwhile"})).json()
        reading = asyncio.create_task(store.events_after(0, 10))
        await until_a_statement_waits_for_a_lock(numberer)
        newest = asyncio.create_task(store.last_event_id())
        finished, _ = await asyncio.wait([newest], timeout=TIMEOUT)  # long enough for an answer that does not wait
        await numberer.execute("SELECT pg_advisory_unlock($1)", NUMBERING_LOCK)
        [event] = await reading
    finally:
        await numberer.close()

    assert not finished
    assert (event.item.id, await newest) == (created["id"], event.id)
