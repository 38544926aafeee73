"""Item events, fanned out to websocket subscribers by one background worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import WSCloseCode, web

from .items import Item
from .keys import HUB

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
SEND_TIMEOUT = 5.0
DRAIN_TIMEOUT = 5.0


class Subscriber(Protocol):
    """What the hub needs of a websocket."""

    async def send_str(self, data: str) -> None:
        """Send one text message."""
        ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool:
        """Close the connection."""
        ...


def event_message(kind: str, item: Item) -> str:
    """The text frame subscribers receive for an item event."""
    return json.dumps({"type": kind, "item": item.to_json()})


class Hub:
    """Queue of outgoing events and the set of subscribers they go to."""

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.subscribers: set[Subscriber] = set()

    def publish(self, kind: str, item: Item) -> None:
        """Queue an event without waiting; drop it (and say so) when the queue is full."""
        try:
            self.queue.put_nowait(event_message(kind, item))
        except asyncio.QueueFull:
            log.warning("event queue full, dropped %s for item %d", kind, item.id)

    async def run(self) -> None:
        """Deliver queued events until cancelled; on cancel, close every subscriber."""
        try:
            while True:
                message = await self.queue.get()
                try:
                    await self.deliver(message)
                finally:
                    self.queue.task_done()
        finally:
            await self.close_subscribers()

    async def deliver(self, message: str) -> None:
        """Send one message to every subscriber; drop those that fail or lag."""
        for subscriber in list(self.subscribers):
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await subscriber.send_str(message)
            except (ConnectionError, TimeoutError):
                self.subscribers.discard(subscriber)
                await subscriber.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")

    async def shutdown(self) -> None:
        """Deliver what is queued (for at most DRAIN_TIMEOUT), then close every subscriber."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await self.queue.join()
        await self.close_subscribers()

    async def close_subscribers(self) -> None:
        """Say goodbye to every subscriber (server going away)."""
        subscribers, self.subscribers = self.subscribers, set()
        for subscriber in subscribers:
            await subscriber.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def shutdown_hub(app: web.Application) -> None:
    """on_shutdown: deliver queued events, then release the websocket handlers so shutdown need not wait on them."""
    await app[HUB].shutdown()


async def hub_context(app: web.Application) -> AsyncIterator[None]:
    """Run the delivery worker for the app's lifetime."""
    hub = app[HUB] = Hub()
    worker = asyncio.create_task(hub.run(), name="event-delivery")
    yield
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker


def reply_to(text: str | None) -> str:
    """The answer to a client's frame: pong to a ping, an error to anything else."""
    try:
        data = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):
        data = None
    if data == {"type": "ping"}:
        return json.dumps({"type": "pong"})
    hint = 'send {"type": "ping"}; events arrive without asking'
    return json.dumps({"type": "error", "error": {"code": "bad_message", "message": hint}})
