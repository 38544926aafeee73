"""Item events, from the store to every websocket subscriber, each with its own buffer and sender.

The store records an event with each add and delete, numbered in the order
they were made (its outbox). The hub reads new events when woken, by this
process's handlers after a write or by the store's `watch` for other
processes' writes, and offers each to every subscriber. A subscriber that
falls BUFFER events behind, or cannot take one within SEND_TIMEOUT, is
closed with 1013 and the id to resume after (`GET /events?after=<id>`), so
it never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import WSCloseCode, web

from .items import ItemStore
from .keys import HUB, STORE
{%- if cookiecutter.database != "none" %}
from .store_{{ cookiecutter.database }} import DatabaseUnavailable
{%- endif %}

log = logging.getLogger(__name__)

BUFFER = 1000  # events waiting for one subscriber before it is closed as too slow
BATCH = 500  # events read from the store per query: below BUFFER, so one read never overflows a subscriber
SEND_TIMEOUT = 5.0  # seconds one send may take before its subscriber is closed as too slow
CLOSE_TIMEOUT = 1.0  # seconds the closing handshake may take before the connection is cut
RETRY_DELAY = 1.0  # seconds before reading the store again after a failure


class Subscriber(Protocol):
    """What the hub needs of a websocket."""

    async def send_str(self, data: str) -> None:
        """Send one text message."""
        ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool:
        """Close the connection."""
        ...


class Hub:
    """The newest event id this process has read, and the subscribers it hands new events to."""

    def __init__(self, store: ItemStore) -> None:
        self.store = store
        self.head = 0
        self.subscriptions: set[Subscription] = set()
        self.woken = asyncio.Event()
        self.stopping = asyncio.Event()

    def wake(self) -> None:
        """New events may be in the store: read them soon."""
        self.woken.set()

    def stop(self) -> None:
        """Let `run` return once its read in progress, if any, is done (a query is not cut off halfway)."""
        self.stopping.set()
        self.wake()

    async def run(self) -> None:
        """Until stopped: each time it is woken, read the new events and offer them to every subscriber."""
        while True:
            await self.woken.wait()
            self.woken.clear()
            if self.stopping.is_set():
                return
            try:
                while events := await self.store.events_after(self.head, BATCH):
                    for event in events if self.subscriptions else ():  # no one to encode them for: skip
                        message = event.message()
                        for subscription in list(self.subscriptions):
                            subscription.offer(event.id, message)
                    self.head = events[-1].id
{%- if cookiecutter.database != "none" %}
            except DatabaseUnavailable as error:
                log.warning("reading events: %s; retrying in %.0f s", error, RETRY_DELAY)
                await self.retry_later()
{%- endif %}
            except Exception:  # a bug must not end delivery for good
                log.exception("reading events failed; retrying in %.0f s", RETRY_DELAY)
                await self.retry_later()

    async def retry_later(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), RETRY_DELAY)
        self.wake()

    @contextlib.asynccontextmanager
    async def subscribe(
        self, subscriber: Subscriber, transport: asyncio.Transport | None, after: int | None
    ) -> AsyncIterator[Subscription]:
        """Send `subscriber` every event from now on (and first those after id `after`) until the block ends."""
        subscription = Subscription(self, subscriber, transport, after)
        self.subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            await subscription.stop()

    async def close_all(self, code: WSCloseCode, reason: str) -> None:
        """Close every subscriber at once, each telling it where to resume."""
        subscriptions = list(self.subscriptions)
        for subscription in subscriptions:
            subscription.close(code, reason)
        await asyncio.gather(*(subscription.stop() for subscription in subscriptions))


class Subscription:
    """One subscriber's buffer of events and the task that sends them, oldest first, each once."""

    def __init__(
        self, hub: Hub, subscriber: Subscriber, transport: asyncio.Transport | None, after: int | None
    ) -> None:
        self.hub = hub
        self.subscriber = subscriber
        self.transport = transport
        self.buffer: asyncio.Queue[tuple[int, str]] = asyncio.Queue(BUFFER)
        self.cursor = hub.head if after is None else after  # the newest event id sent (or not wanted)
        self.replay_to = hub.head  # events up to here are read from the store; later ones come through the buffer
        self.closing: asyncio.Task[None] | None = None
        self.sender = asyncio.create_task(self.send_events(), name="event-sender")

    def offer(self, event_id: int, message: str) -> None:
        """Buffer one event without waiting; close the subscriber if its buffer is full."""
        try:
            self.buffer.put_nowait((event_id, message))
        except asyncio.QueueFull:
            self.close(WSCloseCode.TRY_AGAIN_LATER, f"too slow: {BUFFER} events behind")

    async def send_events(self) -> None:
        try:
            while self.cursor < self.replay_to and (events := await self.hub.store.events_after(self.cursor, BATCH)):
                for event in events:
                    await self.send(event.id, event.message())
            while True:
                await self.send(*await self.buffer.get())
        except TimeoutError:
            self.close(WSCloseCode.TRY_AGAIN_LATER, f"too slow: a send took over {SEND_TIMEOUT:.0f} s")
        except ConnectionError:  # the subscriber went away; its handler ends the subscription
            self.hub.subscriptions.discard(self)
        except Exception:
            log.exception("sending events failed")
            self.close(WSCloseCode.INTERNAL_ERROR, "server error")

    async def send(self, event_id: int, message: str) -> None:
        if event_id > self.cursor:  # an event both replayed and buffered goes once
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.subscriber.send_str(message)
            self.cursor = event_id

    def close(self, code: WSCloseCode, reason: str) -> None:
        """Stop sending and close the websocket, in the background (once), saying why and where to resume."""
        self.hub.subscriptions.discard(self)
        if self.closing is None:
            if code != WSCloseCode.GOING_AWAY:
                log.info("closing an event subscriber (%s)", reason)
            self.closing = asyncio.create_task(self._close(code, f"{reason}; resume with after={self.cursor}"))

    async def _close(self, code: WSCloseCode, reason: str) -> None:
        self.sender.cancel()
        await asyncio.wait({self.sender})
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.subscriber.close(code=code, message=reason.encode()[:123])  # a close reason's limit
        except TimeoutError:  # a peer that reads nothing never answers the close either
            self.abort()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this task is being cancelled
                raise
            # Not this task: aiohttp shares one wait-for-the-peer-to-read among a connection's writers, and the
            # sender cancelled above was waiting on it. The peer takes nothing: cut the connection.
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def stop(self) -> None:
        """End the sender and wait for a close in progress."""
        self.hub.subscriptions.discard(self)
        self.sender.cancel()
        await asyncio.wait({self.sender})
        if self.closing is not None:
            await self.closing


async def shutdown_hub(app: web.Application) -> None:
    """on_shutdown: close every subscriber, so the server's shutdown need not wait on their handlers."""
    await app[HUB].close_all(WSCloseCode.GOING_AWAY, "server shutdown")


async def hub_context(app: web.Application) -> AsyncIterator[None]:
    """Run the hub, and the store's watch for other processes' events, for the app's lifetime."""
    hub = app[HUB] = Hub(app[STORE])
    hub.head = await hub.store.last_event_id()  # before the first subscriber comes
    delivery = asyncio.create_task(hub.run(), name="event-delivery")
    watch = asyncio.create_task(app[STORE].watch(hub.wake), name="event-watch")
    yield
    watch.cancel()
    hub.stop()
    await asyncio.wait({watch, delivery})


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
