"""A subscriber to a running service's GET /events websocket, keeping every event it is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

WAIT = 5.0  # seconds for an expected frame: a subscription's start, or an event

Event = dict[str, Any]


class EventStream:
    """One websocket to /events and the events received on it so far, in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[Event] = []

    async def receive(self) -> Event | None:
        """The next frame: an event (also kept in `events`), or None for the answer to a ping."""
        message = await self.ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"the event stream ended: {message.type.name} {message.data!r} {message.extra!r}")
        frame: Event = json.loads(message.data)
        if frame == {"type": "pong"}:
            return None
        assert "id" in frame, f"not an event: {frame}"
        self.events.append(frame)
        return frame

    async def until_created(self, *item_ids: int) -> list[Event]:
        """Read until the events of these items' creation have come (within WAIT); every event received so far."""
        try:
            async with asyncio.timeout(WAIT):
                while not set(item_ids) <= self.created():
                    await self.receive()
        except TimeoutError:
            missing = sorted(set(item_ids) - self.created())
            raise AssertionError(f"in {WAIT:.0f} s, no event of the creation of items {missing}") from None
        return self.events

    def created(self) -> set[int]:
        """The ids of the items whose creation events have come."""
        return {event["item"]["id"] for event in self.events if event["type"] == "item.created"}


@asynccontextmanager
async def subscribed(session: aiohttp.ClientSession, url: str, after: int | None = None) -> AsyncIterator[EventStream]:
    """A subscriber to `url`/events, yielded once the service has registered it; closed at exit.

    It is first sent the events after id `after`, if given. The service has registered it once it answered a ping.
    """
    params = {} if after is None else {"after": str(after)}
    async with asyncio.timeout(WAIT):
        ws = await session.ws_connect(f"{url}/events", params=params)
    try:
        stream = EventStream(ws)
        async with asyncio.timeout(WAIT):
            await ws.send_json({"type": "ping"})
            while await stream.receive() is not None:  # events replayed before the answer are kept
                pass
        yield stream
    finally:
        await ws.close()
