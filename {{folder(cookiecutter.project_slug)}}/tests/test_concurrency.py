"""Concurrency: many writers and many websocket subscribers at once lose nothing; a bad subscriber is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import aiohttp
import pytest
from aiohttp import WSCloseCode

from {{ cookiecutter.package_name }} import events
from {{ cookiecutter.package_name }}.events import Hub
from {{ cookiecutter.package_name }}.items import ItemStore, NewItem

from .support.clients import Client
from .support.subscribers import GoneSubscriber, RecordingSubscriber, StalledSubscriber

WRITERS = 200
WAVE = 50  # writers started per loop step
SUBSCRIBERS = 20
EVENTS = 30
STUCK_LOAD = 1500  # creates while one subscriber reads nothing: enough to fill its link (~1,000) and its buffer
T = TypeVar("T")


async def concurrently(requests: Iterable[Awaitable[T]]) -> list[T]:
    """Await every request at once; their results in order.

    They start WAVE per loop step: starting 200 tasks is the test's own work, and in one step (traced for
    coverage, on a busy runner) it could pass the harness's limit for a step, which is there for the service.
    """
    tasks = []
    for started, request in enumerate(requests, start=1):
        tasks.append(asyncio.ensure_future(request))
        if started % WAVE == 0:
            await asyncio.sleep(0)
    return await asyncio.gather(*tasks)


@pytest.mark.heavy  # 200 requests: `--heavy` only
@pytest.mark.timeout(60)  # 200 requests, traced for coverage on a busy runner, can take more than 10 s
async def test_concurrent_creates_all_succeed_and_every_row_is_stored(client: Client, store: ItemStore) -> None:
    names = {f"concurrent {n}" for n in range(WRITERS)}

    responses = await concurrently(client.post("/items", json={"name": name}) for name in names)

    assert [response.status for response in responses] == [201] * WRITERS
    stored = [item for offset in range(0, WRITERS, 100) for item in await store.list(limit=100, offset=offset)]
    assert {item.name for item in stored} == names


async def create(client: Client, name: str) -> int:
    """POST an item; its id."""
    response = await client.post("/items", json={"name": name})
    return int((await response.json())["id"])


async def receive_ids(ws: aiohttp.ClientWebSocketResponse) -> list[int]:
    """The item ids of the next EVENTS events on `ws`, in the order they came."""
    return [(await ws.receive_json(timeout=2))["item"]["id"] for _ in range(EVENTS)]


@pytest.mark.heavy  # 20 websockets, 600 frames: `--heavy` only
@pytest.mark.timeout(60)
async def test_every_subscriber_receives_every_event_in_order(client: Client) -> None:
    sockets = [await client.ws_connect("/events") for _ in range(SUBSCRIBERS)]
    try:
        for ws in sockets:  # a pong proves the subscription is registered
            await ws.send_json({"type": "ping"})
            await ws.receive_json(timeout=2)

        created = [await create(client, f"event {n}") for n in range(EVENTS)]
        received = await concurrently(receive_ids(ws) for ws in sockets)

        assert received == [created] * SUBSCRIBERS
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_a_gone_or_stalled_subscriber_is_dropped_and_the_others_get_every_event(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "SEND_TIMEOUT", 0.05)  # how long a send may take before its subscriber is dropped
    hub = Hub(store)
    healthy, gone, stalled = RecordingSubscriber(), GoneSubscriber(), StalledSubscriber()
    delivery = asyncio.create_task(hub.run())
    try:
        async with contextlib.AsyncExitStack() as stack:
            for subscriber in (healthy, gone, stalled):
                await stack.enter_async_context(hub.subscribe(subscriber, None, None))
            for n in range(3):
                await store.add(NewItem(name=f"event {n}", quantity=n))
                hub.wake()

            assert await healthy.received(3) == ["event 0", "event 1", "event 2"]
            assert await stalled.closed() == WSCloseCode.TRY_AGAIN_LATER
            assert len(hub.subscriptions) == 1
    finally:
        hub.stop()
        await delivery
    assert (gone.close_code, healthy.close_code) == (None, None)  # a gone client is let go, not closed again


async def never_reading_subscriber(client: Client) -> socket.socket:
    """A raw socket that asks for /events, then never reads a byte, on a link that buffers little (2 KB on its
    side, 4 KB on the server's: the kernel would otherwise hold megabytes before a send has to wait)."""
    loop = asyncio.get_running_loop()
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    stuck.setblocking(False)
    await loop.sock_connect(stuck, (client.server.host, client.server.port))
    upgrade = (
        "GET /events HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(stuck, upgrade.encode())
    server = client.server.runner.server if client.server.runner else None
    assert server is not None
    for _ in range(200):  # until the server has taken the connection (2 s at most)
        await asyncio.sleep(0.01)
        if ours := [c.transport for c in server.connections if c.peername == stuck.getsockname() and c.transport]:
            ours[0].get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            return stuck
    raise AssertionError("the server never took the connection")


@pytest.mark.heavy  # hundreds of creates: `--heavy` only
@pytest.mark.timeout(60)
async def test_a_subscriber_that_never_reads_holds_up_no_one(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(events, "BUFFER", 100)  # events a subscriber may fall behind: fewer, for a shorter test
    monkeypatch.setattr(events, "BATCH", 20)  # and events read at once, kept below it as the service's are
    caplog.set_level(logging.INFO, logger=events.__name__)
    names = [f"{n:04} {'x' * 195}" for n in range(STUCK_LOAD)]  # 200 characters each, as in the report
    with await never_reading_subscriber(client):
        async with client.ws_connect("/events") as ws:
            await ws.send_json({"type": "ping"})
            await ws.receive_json(timeout=2)  # subscribed

            await concurrently(client.post("/items", json={"name": name}) for name in names)
            received = [await ws.receive_json(timeout=5) for _ in names]

        assert sorted(event["item"]["name"] for event in received) == names
        assert [event["id"] for event in received] == sorted(event["id"] for event in received)
        assert "closing an event subscriber (too slow" in caplog.text  # the one that reads nothing, and only it
        async with client.ws_connect("/events") as late:
            await late.send_json({"type": "ping"})
            await late.receive_json(timeout=2)
            await client.post("/items", json={"name": "after the crowd"})
            assert (await late.receive_json(timeout=2))["item"]["name"] == "after the crowd"

        started = time.monotonic()
        await client.server.close()
        assert time.monotonic() - started < 2, "shutdown waited on the subscriber that reads nothing"
