"""Concurrency: many writers and many websocket subscribers at once lose nothing; a bad subscriber is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import aiohttp
import pytest
from aiohttp import WSCloseCode

from {{ cookiecutter.package_name }} import events
from {{ cookiecutter.package_name }}.events import Hub
from {{ cookiecutter.package_name }}.items import ItemStore

from .support.clients import Client
from .support.subscribers import RecordingSubscriber

WRITERS = 200
WAVE = 50  # writers started per loop step
SUBSCRIBERS = 20
EVENTS = 30
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


class GoneSubscriber(RecordingSubscriber):
    """A client whose connection broke."""

    async def send_str(self, data: str) -> None:
        raise ConnectionResetError("connection reset by peer")


class StalledSubscriber(RecordingSubscriber):
    """A client that stopped reading: sending to it never finishes."""

    async def send_str(self, data: str) -> None:
        await asyncio.Event().wait()


async def test_a_gone_or_stalled_subscriber_is_dropped_and_the_others_get_every_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "SEND_TIMEOUT", 0.05)  # how long a send may take before its subscriber is dropped
    hub = Hub()
    healthy, gone, stalled = RecordingSubscriber(), GoneSubscriber(), StalledSubscriber()
    hub.subscribers.update([healthy, gone, stalled])

    for n in range(3):
        await hub.deliver(f"event {n}")

    assert healthy.messages == ["event 0", "event 1", "event 2"]
    assert hub.subscribers == {healthy}
    assert (gone.close_code, stalled.close_code, healthy.close_code) == (
        WSCloseCode.TRY_AGAIN_LATER,
        WSCloseCode.TRY_AGAIN_LATER,
        None,
    )
