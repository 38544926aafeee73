"""Item events across processes: every acknowledged write reaches the subscribers of every process, in order.

Production may run several processes on one database: gunicorn's workers, or
`python -m {{ cookiecutter.package_name }}` more than once. Each learns of the
others' writes from the database's events table, so these tests run real
processes and check what their subscribers receive: every acknowledged
create's event, each once, in increasing id order, even when the process that
made the write dies before it could tell anyone.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from operator import itemgetter
from pathlib import Path
from typing import Any
{%- if cookiecutter.database == "postgresql" %}
from urllib.parse import urlsplit
{%- endif %}

import aiohttp
{%- if cookiecutter.database == "postgresql" %}
import asyncpg
{%- endif %}
import pytest

from .support.event_stream import WAIT, Event, EventStream, subscribed
from .support.gunicorn_process import running_gunicorn
from .support.service_process import running_service

pytestmark = [
    pytest.mark.heavy,  # each test starts Python processes: slow, so `--heavy` only
    pytest.mark.timeout(60),  # a start-up alone may take up to START_TIMEOUT (15 s) on a busy runner
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals (and gunicorn)"),
]

CREATES = 100
IN_FLIGHT = 10  # creates sent at once
SUBSCRIBERS = 6  # on gunicorn: at least this many, and some on each of its 2 workers
MOST_SUBSCRIBERS = 30  # more than this and the kernel keeps giving one worker every connection
RESUME_EVERY = 15  # events a resuming subscriber takes on one connection
LAST = "last"  # the name of the item created after all others

Item = dict[str, Any]
Ports = Callable[[], int]


async def create(session: aiohttp.ClientSession, url: str, name: str) -> Item:
    """POST one item; its JSON, once the service acknowledged it with 201."""
    async with session.post(f"{url}/items", json={"name": name, "quantity": 1}) as response:
        assert response.status == 201, await response.text()
        item: Item = await response.json()
        return item


async def create_everywhere(urls: list[str], streams: list[EventStream]) -> list[Item]:
    """CREATES items, sent to `urls` in turn, IN_FLIGHT at a time; once every stream has their events, one more.

    By then every process has read all it was woken for, so only its store's watch can tell it of the last item.
    Returns the items created, once every stream has the last one's event.
    """
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as session:
        created = await asyncio.gather(*(create(session, urls[n % len(urls)], f"item {n}") for n in range(CREATES)))
        for stream in streams:
            await stream.until_created(*(item["id"] for item in created))
        last = await create(session, urls[0], LAST)
    for stream in streams:
        await stream.until_created(last["id"])
    return [*created, last]


def assert_delivered(events: list[Event], created: list[Item]) -> None:
    """`events` are exactly the creation events of `created`: each once, in increasing id order."""
    ids = [event["id"] for event in events]
    assert ids == sorted(set(ids)), "events out of order, or sent twice"
    assert {event["type"] for event in events} == {"item.created"}
    assert sorted((event["item"] for event in events), key=itemgetter("id")) == sorted(created, key=itemgetter("id"))


async def test_two_processes_deliver_each_others_writes(
    unused_tcp_port_factory: Ports, service_env: dict[str, str]
) -> None:
    """Two processes on one database, a subscriber on each: creates spread over both reach both subscribers."""
    async with (
        running_service(unused_tcp_port_factory(), service_env) as first,
        running_service(unused_tcp_port_factory(), service_env) as second,
    ):
        async with (
            aiohttp.ClientSession() as session,
            subscribed(session, first.url) as on_first,
            subscribed(session, second.url) as on_second,
        ):
            created = await create_everywhere([first.url, second.url], [on_first, on_second])
            for stream in (on_first, on_second):
                assert_delivered(stream.events, created)

        for service in (first, second):
            assert "Traceback" not in await service.stop()


def ends(events: list[Event]) -> bool:
    """Whether `events` hold the creation of the item named LAST, the one the writers create after all others."""
    return any(event["item"]["name"] == LAST for event in events)


async def follow(session: aiohttp.ClientSession, urls: list[str]) -> list[Event]:
    """Every event from the first, from connections that each take RESUME_EVERY; the events of all of them.

    Each next connection is to the next service of `urls`, resuming after the last event received, until the
    creation of the item named LAST has come. Its name, not its id, tells: the event may come before the 201 does.
    """
    events: list[Event] = []
    for turn in itertools.count():
        async with subscribed(session, urls[turn % len(urls)], after=events[-1]["id"] if events else 0) as stream:
            while len(stream.events) < RESUME_EVERY and not ends(stream.events):
                async with asyncio.timeout(WAIT):
                    await stream.receive()
        events += stream.events
        if ends(events):
            return events
    raise AssertionError("itertools.count() ended")


async def test_subscribers_resuming_from_process_to_process_get_every_write_once_in_order(
    unused_tcp_port_factory: Ports, service_env: dict[str, str]
) -> None:
    """Concurrent creates on two processes; subscribers that resume on the other process every RESUME_EVERY events.

    Each gets every create's event once, in increasing id order, however the writes' commits interleave.
    """
    async with (
        running_service(unused_tcp_port_factory(), service_env) as first,
        running_service(unused_tcp_port_factory(), service_env) as second,
        aiohttp.ClientSession() as session,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as writers,
    ):
        urls = [first.url, second.url]
        followers = [asyncio.create_task(follow(session, [*urls[n:], *urls[:n]])) for n in (0, 1)]
        created = await asyncio.gather(*(create(writers, urls[n % 2], f"item {n}") for n in range(CREATES)))
        created.append(await create(writers, urls[0], LAST))
        received = await asyncio.gather(*followers)

        for service in (first, second):
            assert "Traceback" not in await service.stop()
    for events in received:
        assert_delivered(events, created)


async def test_gunicorn_workers_deliver_each_others_writes(
    unused_tcp_port_factory: Ports, service_env: dict[str, str], tmp_path: Path
) -> None:
    """gunicorn with 2 workers, subscribers on both: every create reaches every subscriber."""
    workers: Counter[str] = Counter()  # subscribers per worker pid
    streams: list[EventStream] = []
    async with running_gunicorn(unused_tcp_port_factory(), service_env, tmp_path / "access.log") as gunicorn:
        async with AsyncExitStack() as stack:
            while len(streams) < SUBSCRIBERS or len(workers) < 2:
                assert len(streams) < MOST_SUBSCRIBERS, f"every connection went to one worker: {workers}"
                # One connection per subscriber, so the worker it was accepted by is the subscriber's.
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
                await stack.enter_async_context(session)
                workers[await gunicorn.worker_of(session)] += 1
                streams.append(await stack.enter_async_context(subscribed(session, gunicorn.url)))

            created = await create_everywhere([gunicorn.url], streams)
            for stream in streams:
                assert_delivered(stream.events, created)

        assert "Traceback" not in await gunicorn.stop()
        log = await asyncio.to_thread(gunicorn.access_log.read_text)

    assert Counter(line.split()[0] for line in log.splitlines() if " /events " in line) == workers  # as probed


async def test_an_acknowledged_write_outlives_a_killed_process(
    unused_tcp_port_factory: Ports, service_env: dict[str, str]
) -> None:
    """SIGKILL right after a 201: a new process sends that create's event to a subscriber resuming before it."""
    async with aiohttp.ClientSession() as session:
        async with running_service(unused_tcp_port_factory(), service_env) as killed:
            async with subscribed(session, killed.url) as stream:
                before = await create(session, killed.url, "before")
                [event_before] = await stream.until_created(before["id"])
            last = await create(session, killed.url, "last words")
            killed.process.kill()
            await killed.process.wait()

        async with running_service(unused_tcp_port_factory(), service_env) as successor:
            async with subscribed(session, successor.url, after=event_before["id"]) as resumed:
                events = await resumed.until_created(last["id"])
            assert "Traceback" not in await successor.stop()

    assert [(event["type"], event["item"]) for event in events] == [("item.created", last)]
    assert events[0]["id"] > event_before["id"]
{%- if cookiecutter.database == "postgresql" %}


async def listeners(server: asyncpg.Connection, name: str, count: int) -> list[int]:
    """Wait until `count` connections LISTEN on database `name` (a LISTEN was their last statement); their pids."""
    query = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'"
    async with asyncio.timeout(5):
        while True:
            pids = [row["pid"] for row in await server.fetch(query, name)]
            if len(pids) == count:
                return pids
            await asyncio.sleep(0.02)


async def test_a_listener_that_lost_its_connection_catches_up(
    unused_tcp_port_factory: Ports, service_env: dict[str, str], server: asyncpg.Connection
) -> None:
    """A listener whose connection was cut catches up on reconnecting.

    Cut the listeners' connections and keep them out while another process creates an item: once they are back, a
    subscriber on the first process receives it.
    """
    name = urlsplit(service_env["DATABASE_URL"]).path.removeprefix("/")
    async with (
        running_service(unused_tcp_port_factory(), service_env) as cut_off,
        running_service(unused_tcp_port_factory(), service_env) as writer,
    ):
        async with aiohttp.ClientSession() as session, subscribed(session, cut_off.url) as stream:
            pids = await listeners(server, name, count=2)  # one per process, once each has started it
            await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')  # no reconnecting yet
            await server.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
            await listeners(server, name, count=0)  # gone, so no NOTIFY can reach them

            created = await create(session, writer.url, "while nobody listened")
            await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

            events = await stream.until_created(created["id"])

        for service in (cut_off, writer):
            assert "Traceback" not in await service.stop()

    assert [(event["type"], event["item"]) for event in events] == [("item.created", created)]
{%- endif %}
