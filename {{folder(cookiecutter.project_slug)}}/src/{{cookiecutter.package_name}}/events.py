"""Item events, from the store to every websocket subscriber, each with its own buffer and sender.

The store records an event with each add and delete, numbered in the order
they were made (its outbox). The hub reads new events when woken, by this
process's handlers after a write or by the store's `watch` for other
processes' writes, and offers each to every subscriber. A subscriber that
falls BUFFER events behind, or cannot take one within SEND_TIMEOUT, is
closed with 1013 and the id to resume after (`GET /events?after=<id>`), so
it never holds up the others; so is one whose missed events the store
cannot give now (down or too slow), with one WARNING line.

A subscriber must keep reading: the server pings it every PING_EVERY and
cuts its connection when the pong does not come within PONG_TIMEOUT,
whatever else it sends. What it sends is taken at a bounded pace and the
kernel holds little of its connection, so a crowd of clients that send and
never read costs the server a bounded amount of memory and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import secrets
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from aiohttp import WSCloseCode, web

from .items import ItemEvent, ItemStore, StoreUnavailable
from .keys import HUB, STORE

log = logging.getLogger(__name__)

BUFFER = 1000  # events waiting for one subscriber before it is closed as too slow
BATCH = 500  # events read from the store per query: below BUFFER, so one read never overflows a subscriber
SEND_TIMEOUT = 5.0  # seconds one send may take before its subscriber is closed as too slow
CLOSE_TIMEOUT = 1.0  # seconds the closing handshake may take before the connection is cut
RETRY_DELAY = 1.0  # seconds before reading the store again after a failure
CLOSE_REASON = 123  # bytes a close frame's reason may take (RFC 6455)
PING_EVERY = 20.0  # seconds between the server's pings to a subscriber
PONG_TIMEOUT = 10.0  # seconds a subscriber has to answer one (reading all sent before it) before it is dropped
MESSAGE_BURST = 10  # a subscriber's messages taken at once; then one each MESSAGE_INTERVAL seconds
MESSAGE_INTERVAL = 0.1  # seconds
LINK_BUFFER = 32 * 1024  # bytes the kernel may hold each way on a subscriber's connection (Linux books twice that)


class Subscriber(Protocol):
    """What the hub needs of a websocket."""

    async def send_str(self, data: str) -> None:
        """Send one text message."""
        ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool:
        """Close the connection."""
        ...


class Hub:
    """The newest event id this process has read, and the subscriptions it hands new events to."""

    def __init__(self, store: ItemStore) -> None:
        self.store = store
        self.head = 0
        self.subscriptions: set[Subscription] = set()  # those replaying or live: joined, not yet left
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
                    if self.subscriptions:  # else no one to encode them for
                        self.offer(events)
                    self.head = events[-1].id
                    if len(events) < BATCH:  # all there was: a write from now on wakes it again
                        break
                    await asyncio.sleep(0)  # the senders' turn before the next read, however fast the store answers
            except StoreUnavailable as error:
                log.warning("reading events: %s; retrying in %.0f s", error, RETRY_DELAY)
                await self.retry_later()
            except Exception:  # a bug must not end delivery for good
                log.exception("reading events failed; retrying in %.0f s", RETRY_DELAY)
                await self.retry_later()

    def offer(self, events: Sequence[ItemEvent]) -> None:
        """Hand each event, encoded once, to every subscription."""
        for event in events:
            message = event.message()
            for subscription in list(self.subscriptions):
                subscription.offer(event.id, message)

    async def retry_later(self) -> None:
        """Wake the hub again after RETRY_DELAY, or at once when it is stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), RETRY_DELAY)
        self.wake()

    def subscribe(self, subscriber: Subscriber, transport: asyncio.Transport | None, after: int | None) -> Subscription:
        """A subscription, for `async with`: every event from now on to `subscriber`, first those after `after`."""
        return Subscription(self, subscriber, transport, after)

    async def close_all(self, code: WSCloseCode, reason: str) -> None:
        """Close every subscriber at once, each told where to resume; return when all have ended."""
        subscriptions = list(self.subscriptions)
        for subscription in subscriptions:
            subscription.close(code, reason)
        await asyncio.gather(*(subscription.end() for subscription in subscriptions))


class State(enum.Enum):
    """Where a subscription is in its life: it moves only down this list."""

    CREATED = "created"  # not yet in the hub
    REPLAYING = "replaying"  # in the hub: sending the events after `after` from the store, buffering the new ones
    LIVE = "live"  # in the hub: sending buffered events as they come
    CLOSING = "closing"  # out of the hub: telling the subscriber why and where to resume (or it went away)
    ENDED = "ended"  # its sender and its close are done


class Subscription:
    """One subscriber's buffer of events and the task that sends them, oldest first, each once.

    `async with` is its only way in (it joins the hub, REPLAYING) and its only
    way out (it leaves, ENDED); `close` ends it early, as the hub's reason to.
    Only `join` adds it to the hub and only `leave` removes it.
    """

    sender: asyncio.Task[None]  # from `join` on

    def __init__(
        self, hub: Hub, subscriber: Subscriber, transport: asyncio.Transport | None, after: int | None
    ) -> None:
        self.hub = hub
        self.subscriber = subscriber
        self.transport = transport
        self.state = State.CREATED
        self.buffer: asyncio.Queue[tuple[int, str]] = asyncio.Queue(BUFFER)
        self.cursor = hub.head if after is None else after  # the newest event id sent (or not wanted)
        self.replay_to = hub.head  # events up to here are read from the store; later ones come through the buffer
        self.closing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscription:
        self.join()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.end()

    def join(self) -> None:
        """Join the hub and start sending: REPLAYING."""
        self.state = State.REPLAYING
        self.hub.subscriptions.add(self)
        self.sender = asyncio.create_task(self.send_events(), name="event-sender")

    def leave(self) -> bool:
        """Leave the hub, so no event is offered any more: CLOSING. False if it had left already."""
        if self.state not in (State.REPLAYING, State.LIVE):
            return False
        self.hub.subscriptions.remove(self)
        self.state = State.CLOSING
        return True

    def offer(self, event_id: int, message: str) -> None:
        """Buffer one event without waiting; close the subscriber if its buffer is full."""
        try:
            self.buffer.put_nowait((event_id, message))
        except asyncio.QueueFull:
            self.close(WSCloseCode.TRY_AGAIN_LATER, f"too slow: {BUFFER} events behind")

    async def send_events(self) -> None:
        """The sender: the missed events from the store, then the buffered ones, until cancelled or failing."""
        try:
            while self.cursor < self.replay_to and (events := await self.hub.store.events_after(self.cursor, BATCH)):
                for event in events:
                    await self.send(event.id, event.message())
            if self.state is State.REPLAYING:
                self.state = State.LIVE
            while True:
                await self.send(*await self.buffer.get())
        except TimeoutError:
            self.close(WSCloseCode.TRY_AGAIN_LATER, f"too slow: a send took over {SEND_TIMEOUT:.0f} s")
        except StoreUnavailable as error:  # its replay could not read the missed events: a fault, not a bug
            self.close(WSCloseCode.TRY_AGAIN_LATER, f"store unavailable: {error}", logging.WARNING)
        except ConnectionError:  # the subscriber went away; its handler ends the subscription
            self.leave()
        except Exception:
            log.exception("sending events failed")
            self.close(WSCloseCode.INTERNAL_ERROR, "server error")

    async def send(self, event_id: int, message: str) -> None:
        """Send one event, unless it was sent already (an event both replayed and buffered goes once)."""
        if event_id > self.cursor:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.subscriber.send_str(message)
            self.cursor = event_id

    def close(self, code: WSCloseCode, reason: str, level: int = logging.INFO) -> None:
        """Leave the hub and close the websocket in the background, saying why and where to resume (once).

        The closing is logged at `level`, but for a server shutdown's.
        """
        if self.leave():
            if code != WSCloseCode.GOING_AWAY:
                log.log(level, "closing an event subscriber (%s)", reason)
            self.closing = asyncio.create_task(self.send_close(code, reason))

    async def send_close(self, code: WSCloseCode, reason: str) -> None:
        """Stop the sender, then send the close frame with the resume id; cut the connection if it is not taken."""
        await self.stop_sending()
        resume = f"; resume with after={self.cursor}".encode()  # once the sender has stopped: what it sent last
        said = reason.encode()[: CLOSE_REASON - len(resume)].decode(errors="ignore")  # a long reason is cut, not it
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.subscriber.close(code=code, message=said.encode() + resume)
        except TimeoutError:  # a peer that reads nothing never answers the close either
            self.cut()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this task is being cancelled
                raise
            # Not this task: aiohttp shares one wait-for-the-peer-to-read among a connection's writers, and the
            # sender cancelled above was waiting on it. The peer takes nothing: cut the connection.
            self.cut()

    def drop(self, reason: str) -> None:
        """Leave the hub and cut the connection at once: for a subscriber that reads nothing, not even a close."""
        if self.leave():
            log.info("dropping an event subscriber (%s)", reason)
            self.cut()

    def cut(self) -> None:
        """Drop the connection without a closing handshake, and what the peer has not taken with it (a reset)."""
        if self.transport is None:
            return
        link = self.transport.get_extra_info("socket")
        if link is not None:  # else closed already
            link.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    async def stop_sending(self) -> None:
        """Cancel the sender and wait until it has stopped."""
        self.sender.cancel()
        await asyncio.wait({self.sender})

    async def end(self) -> None:
        """Leave the hub, stop the sender and wait for a close in progress: ENDED."""
        if self.state is State.CREATED:
            self.state = State.ENDED
            return
        self.leave()
        await self.stop_sending()
        if self.closing is not None:
            await self.closing
        self.state = State.ENDED


class ReadCheck:
    """Pings a subscriber every PING_EVERY; one that has not answered within PONG_TIMEOUT is dropped as not reading.

    A pong comes only once the client has read everything sent before its
    ping, and each ping carries bytes it cannot guess: sending pings or
    pongs of its own does not pass for reading. For `async with`, inside
    the subscription's.
    """

    checking: asyncio.Task[None]  # from `async with` on

    def __init__(self, ping: Callable[[bytes], Awaitable[None]], subscription: Subscription) -> None:
        self.ping = ping
        self.subscription = subscription
        self.expected = b""
        self.answered = asyncio.Event()

    async def __aenter__(self) -> ReadCheck:
        self.checking = asyncio.create_task(self.check(), name="event-read-check")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.checking.cancel()
        await asyncio.wait({self.checking})

    def pong(self, payload: bytes) -> None:
        """The subscriber answered a ping with `payload`."""
        if payload == self.expected:
            self.answered.set()

    async def check(self) -> None:
        """Until the subscriber fails a check or goes away: ping it, then wait for the pong."""
        while True:
            await asyncio.sleep(PING_EVERY)
            self.expected = secrets.token_bytes(8)
            self.answered.clear()
            try:
                async with asyncio.timeout(PONG_TIMEOUT):
                    await self.ping(self.expected)
                    await self.answered.wait()
            except TimeoutError:
                self.subscription.drop(f"not reading: no answer to a ping within {PONG_TIMEOUT:g} s")
                return
            except ConnectionError:  # it went away; its handler ends the subscription
                return


class Pace:
    """Takes a subscriber's messages MESSAGE_BURST at once, then one each MESSAGE_INTERVAL.

    While it waits, what the client sends more stays unread in the
    connection's buffers, and TCP makes the client wait too.
    """

    def __init__(self) -> None:
        self.due = 0.0  # when the next message would be on time were the burst used up

    async def turn(self) -> None:
        """Return when the next message may be taken."""
        now = asyncio.get_running_loop().time()
        self.due = max(self.due, now - MESSAGE_BURST * MESSAGE_INTERVAL) + MESSAGE_INTERVAL
        if self.due > now:
            await asyncio.sleep(self.due - now)


def bound_link(transport: asyncio.Transport) -> None:
    """Let the kernel hold at most LINK_BUFFER bytes each way on a subscriber's connection, not its megabytes."""
    link = transport.get_extra_info("socket")
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        link.setsockopt(socket.SOL_SOCKET, option, LINK_BUFFER)


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
