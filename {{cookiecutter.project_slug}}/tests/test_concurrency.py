"""Concurrency: many writers and many websocket subscribers at once lose nothing."""

from __future__ import annotations

import asyncio

from {{ cookiecutter.package_name }}.items import ItemStore

from .support.clients import Client

WRITERS = 200
SUBSCRIBERS = 20
EVENTS = 30


async def test_concurrent_creates_all_succeed_and_every_row_is_stored(client: Client, store: ItemStore) -> None:
    names = {f"concurrent {n}" for n in range(WRITERS)}

    responses = await asyncio.gather(*(client.post("/items", json={"name": name}) for name in names))

    assert [response.status for response in responses] == [201] * WRITERS
    stored = [item for offset in range(0, WRITERS, 100) for item in await store.list(limit=100, offset=offset)]
    assert {item.name for item in stored} == names


async def create(client: Client, name: str) -> int:
    """POST an item; its id."""
    response = await client.post("/items", json={"name": name})
    return int((await response.json())["id"])


async def test_every_subscriber_receives_every_event_in_order(client: Client) -> None:
    sockets = [await client.ws_connect("/events") for _ in range(SUBSCRIBERS)]
    try:
        for ws in sockets:  # a pong proves the subscription is registered
            await ws.send_json({"type": "ping"})
            await ws.receive_json(timeout=2)

        created = [await create(client, f"event {n}") for n in range(EVENTS)]

        for ws in sockets:
            received = [(await ws.receive_json(timeout=2))["item"]["id"] for _ in range(EVENTS)]
            assert received == created
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
