"""Concurrency: many writers and many websocket subscribers at once lose nothing; a bad subscriber is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar
from unittest import mock

import aiohttp
{%- if cookiecutter.database == "sqlite" %}
import aiosqlite
{%- endif %}
import pytest
from aiohttp import WSCloseCode

from {{ cookiecutter.package_name }} import events
from {{ cookiecutter.package_name }}.events import Hub, State, Subscription
from {{ cookiecutter.package_name }}.items import ItemEvent, ItemStore, NewItem
from {{ cookiecutter.package_name }}.keys import HUB

from .support.clients import Client, ClientFactory
from .support.conditions import until
from .support.subscribers import (
    DeafSubscriber,
    FaultySubscriber,
    GoneSubscriber,
    RecordingSubscriber,
    StalledSubscriber,
    TiringSubscriber,
)

WRITERS = 200
WAVE = 50  # writers started per loop step
SUBSCRIBERS = 20
EVENTS = 30
SHUTDOWN_BOUND = 10.0  # seconds: see test_a_subscriber_that_never_reads_holds_up_no_one
STUCK_LOAD = 1500  # creates while one subscriber reads nothing: enough to fill its link and its buffer
# Those in flight at once: each waits for a write turn behind at most as many, far within the store's timeout
# however busy the machine (all at once, the last would wait for 1,499).
CREATES_AT_ONCE = 50
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


async def test_creates_at_once_each_get_their_own_item(store: ItemStore) -> None:
    wanted = [NewItem(name=f"at once {n}", quantity=n) for n in range(CREATES_AT_ONCE)]

    items = await asyncio.gather(*(store.add(new) for new in wanted))

    assert [(item.name, item.quantity) for item in items] == [(new.name, new.quantity) for new in wanted]
    assert len({item.id for item in items}) == len(wanted)
    assert [await store.get(item.id) for item in items] == items
{%- if cookiecutter.database == "sqlite" %}


async def test_creates_waiting_for_the_same_turn_to_write_share_one_insert(
    store: ItemStore, database: aiosqlite.Connection
) -> None:
    with mock.patch.object(database, "execute_fetchall", wraps=database.execute_fetchall) as statements:
        await asyncio.gather(*(store.add(NewItem(name=f"at once {n}", quantity=n)) for n in range(CREATES_AT_ONCE)))

    # Only the writes: a hub of another test's app may poll for events on this connection meanwhile.
    writes = [call.args[0].split(" (")[0] for call in statements.call_args_list if call.args[0].startswith("INSERT")]
    assert writes == ["INSERT INTO items"]
{%- endif %}


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


async def test_a_resuming_subscriber_gets_every_missed_event_once_across_batches_and_the_hand_over(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "BATCH", 2)  # five missed events: three reads
    for n in range(5):
        await store.add(NewItem(name=f"event {n}", quantity=n))
    hub, subscriber = Hub(store), RecordingSubscriber()
    hub.head = await store.last_event_id()
    missed = await store.events_after(0, 5)

    async with hub.subscribe(subscriber, None, after=0) as subscription:
        for event in missed[3:]:  # as if also read by the hub during the hand-over from replay to live
            subscription.offer(event.id, event.message())
        await store.add(NewItem(name="event 5", quantity=5))
        [live] = await store.events_after(hub.head, 5)
        subscription.offer(live.id, live.message())

        assert await subscriber.received(6) == [f"event {n}" for n in range(6)]
    assert len(subscriber.messages) == 6


async def test_a_subscriber_that_disconnects_leaves_the_hub(client: Client) -> None:
    hub = client.app[HUB]
    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})
        await ws.receive_json()  # subscribed
        assert len(hub.subscriptions) == 1

    await until(lambda: not hub.subscriptions)


async def add_events(store: ItemStore, count: int) -> list[ItemEvent]:
    """Add `count` items; their events."""
    first = await store.last_event_id()
    for n in range(count):
        await store.add(NewItem(name=f"event {n}", quantity=n))
    return list(await store.events_after(first, count))


def offer(subscription: Subscription, batch: Iterable[ItemEvent]) -> None:
    """Hand `batch` to `subscription` at once, as the hub does with one read."""
    for event in batch:
        subscription.offer(event.id, event.message())


def resume_point(subscriber: RecordingSubscriber) -> int:
    """The id its close reason says to resume after."""
    prefix, _, after = subscriber.close_reason.rpartition("resume with after=")
    assert prefix, f"no resume point in {subscriber.close_reason!r}"
    return int(after)


@pytest.mark.parametrize(
    "cause",
    [
        "its buffer overflows",
        "a send takes too long",
        "a burst overflows its buffer before its sender runs",
    ],
)
async def test_a_subscriber_closed_as_too_slow_resumes_after_exactly_the_last_event_it_was_sent(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch, cause: str
) -> None:
    """Resuming with the close reason's `after=` loses nothing and repeats nothing."""
    monkeypatch.setattr(events, "BUFFER", 3)
    if cause == "a send takes too long":
        monkeypatch.setattr(events, "SEND_TIMEOUT", 0.05)
    written = rest = await add_events(store, 7)
    subscriber = RecordingSubscriber() if cause.startswith("a burst") else TiringSubscriber(takes=2)
    async with Hub(store).subscribe(subscriber, None, None) as subscription:
        if isinstance(subscriber, TiringSubscriber):
            offer(subscription, written[:3])  # it takes two, then hangs on the third
            await subscriber.stalled.wait()
            rest = written[3:]
        if cause != "a send takes too long":
            offer(subscription, rest)  # one more than its buffer holds

        assert await subscriber.closed() == WSCloseCode.TRY_AGAIN_LATER
    resumed = await store.events_after(resume_point(subscriber), len(written))
    assert subscriber.ids + [event.id for event in resumed] == [event.id for event in written]


async def test_a_long_close_reason_is_cut_to_fit_the_frame_but_never_its_resume_point(store: ItemStore) -> None:
    subscriber = RecordingSubscriber()
    async with Hub(store).subscribe(subscriber, None, after=7) as subscription:
        subscription.close(WSCloseCode.TRY_AGAIN_LATER, "é" * 100)  # 200 bytes, over the 123 a close reason may take

        await subscriber.closed()  # a reason cut inside a character would not decode

    assert len(subscriber.close_reason.encode()) <= events.CLOSE_REASON
    assert resume_point(subscriber) == 7


async def test_a_subscriber_whose_send_fails_unexpectedly_is_closed_and_logged_while_the_others_go_on(
    store: ItemStore, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub(store)
    faulty, healthy = FaultySubscriber(), RecordingSubscriber()
    delivery = asyncio.create_task(hub.run())
    try:
        async with hub.subscribe(faulty, None, None), hub.subscribe(healthy, None, None):
            written = await add_events(store, 2)
            hub.wake()

            assert await faulty.closed() == WSCloseCode.INTERNAL_ERROR
            written += await add_events(store, 1)  # after it is gone
            hub.wake()
            await healthy.received(3)
            assert len(hub.subscriptions) == 1
    finally:
        hub.stop()
        await delivery
    assert healthy.ids == [event.id for event in written]
    [error] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert (error.name, error.getMessage()) == (events.__name__, "sending events failed")
    assert error.exc_info is not None
    assert isinstance(error.exc_info[1], RuntimeError)  # with its traceback
    assert resume_point(faulty) == 0  # it was sent nothing


async def test_close_all_has_closed_every_subscriber_when_it_returns(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "CLOSE_TIMEOUT", 0.05)  # how long a closing handshake may take before the cut
    hub = Hub(store)
    answering, busy, deaf = RecordingSubscriber(), StalledSubscriber(), DeafSubscriber()
    deaf_link = mock.Mock(spec=asyncio.Transport)
    async with (
        hub.subscribe(answering, None, None) as first,
        hub.subscribe(busy, None, None) as second,
        hub.subscribe(deaf, deaf_link, None) as third,
    ):
        offer(second, await add_events(store, 1))  # its sender is in a send that never ends

        await hub.close_all(WSCloseCode.GOING_AWAY, "server shutdown")

        assert (answering.close_code, busy.close_code) == (WSCloseCode.GOING_AWAY,) * 2
        deaf_link.abort.assert_called_once_with()  # no answer to the close: the connection is cut
        assert not hub.subscriptions
        assert {subscription.state for subscription in (first, second, third)} == {State.ENDED}


async def test_a_subscription_goes_through_its_states_in_order_and_is_in_the_hub_only_while_it_sends(
    store: ItemStore,
) -> None:
    missed = await add_events(store, 2)
    hub, tiring, recording = Hub(store), TiringSubscriber(takes=1), RecordingSubscriber()
    hub.head = missed[-1].id
    replaying, live = hub.subscribe(tiring, None, after=0), hub.subscribe(recording, None, None)
    assert (replaying.state, live.state, hub.subscriptions) == (State.CREATED, State.CREATED, set())

    async with replaying, live:
        await tiring.stalled.wait()  # sent the first missed event, stuck on the second
        await until(lambda: live.state is State.LIVE)  # nothing missed: live at once
        assert (replaying.state, hub.subscriptions) == (State.REPLAYING, {replaying, live})

        replaying.close(WSCloseCode.TRY_AGAIN_LATER, "too slow")
        assert (replaying.state, hub.subscriptions) == (State.CLOSING, {live})

    assert (replaying.state, live.state, hub.subscriptions) == (State.ENDED, State.ENDED, set())
    assert tiring.close_code == WSCloseCode.TRY_AGAIN_LATER


async def test_end_has_stopped_the_sender_and_a_close_in_progress_when_it_returns(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "CLOSE_TIMEOUT", 0.05)
    link = mock.Mock(spec=asyncio.Transport)
    hub = Hub(store)
    async with hub.subscribe(DeafSubscriber(), link, None) as subscription:
        subscription.close(WSCloseCode.TRY_AGAIN_LATER, "too slow")

        await subscription.end()

        assert (subscription.state, subscription.sender.done()) == (State.ENDED, True)
        link.abort.assert_called_once_with()  # no answer to the close: the connection is cut


def test_one_read_fits_in_an_empty_buffer() -> None:
    """The hub offers a read's events at once, without a pause in which a sender could take any.

    A read larger than a buffer would close a subscriber that keeps up as too slow.
    """
    assert events.BATCH <= events.BUFFER


@pytest.mark.parametrize(
    "pending",
    [
        2,  # one read that fills a buffer exactly
        5,  # three reads in a row
    ],
)
async def test_a_subscriber_that_keeps_up_gets_every_event_however_many_come_at_once(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch, pending: int
) -> None:
    monkeypatch.setattr(events, "BUFFER", 2)
    monkeypatch.setattr(events, "BATCH", 2)
    hub, subscriber = Hub(store), RecordingSubscriber()
    delivery = asyncio.create_task(hub.run())
    try:
        async with hub.subscribe(subscriber, None, None):
            written = await add_events(store, pending)
            hub.wake()

            await until(lambda: len(subscriber.messages) == pending or subscriber.close_code is not None)
    finally:
        hub.stop()
        await delivery
    assert (subscriber.ids, subscriber.close_code) == ([event.id for event in written], None)


async def test_the_hub_reads_each_event_once_even_while_no_one_listens(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its head only moves forward: each event is read once, and a subscriber gets none from before it came."""
    monkeypatch.setattr(events, "BATCH", 2)  # three reads for five events
    hub, subscriber = Hub(store), RecordingSubscriber()
    delivery = asyncio.create_task(hub.run())
    read: list[int] = []  # the ids of the events the hub read, in the order it read them
    events_after = store.events_after

    async def reading(after: int, limit: int) -> Sequence[ItemEvent]:
        found = await events_after(after, limit)
        if asyncio.current_task() is delivery:
            read.extend(event.id for event in found)
        return found

    monkeypatch.setattr(store, "events_after", reading)
    try:
        before = await add_events(store, 5)
        hub.wake()
        await until(lambda: hub.head == before[-1].id)  # read with no one to send them to
        async with hub.subscribe(subscriber, None, None):
            written = await add_events(store, 5)
            hub.wake()
            await subscriber.received(5)
    finally:
        hub.stop()
        await delivery
    assert subscriber.ids == [event.id for event in written]
    assert read == [event.id for event in before + written]


async def test_a_read_that_finds_less_than_a_batch_is_the_last_until_the_hub_is_woken_again(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It found all there was: one read per write, not a second to find nothing."""
    hub = Hub(store)
    hub.head = before = await store.last_event_id()
    [written] = await add_events(store, 1)
    delivery = asyncio.create_task(hub.run())
    reads: list[int] = []  # where each of the hub's reads started
    events_after = store.events_after

    async def reading(after: int, limit: int) -> Sequence[ItemEvent]:
        reads.append(after)
        return await events_after(after, limit)

    monkeypatch.setattr(store, "events_after", reading)
    try:
        hub.wake()
        await until(lambda: hub.head == written.id)
    finally:
        hub.stop()  # seen when the hub next waits to be woken: after a second read, if it makes one
        await delivery
    assert reads == [before]


async def never_reading_subscriber(client: Client) -> socket.socket:
    """A raw socket that asks for /events, then never reads a byte, on a link that buffers little.

    2 KB on its side, 4 KB on the server's: the kernel would otherwise hold megabytes before a send has to wait.
    """
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


async def receive_all(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[Any]:
    """The next `count` events on `ws`."""
    return [await ws.receive_json() for _ in range(count)]


@pytest.mark.heavy  # hundreds of creates: `--heavy` only
@pytest.mark.timeout(120)  # far above the work: a few seconds quiet, 45 s seen with every core busy under --heavy
async def test_a_subscriber_that_never_reads_holds_up_no_one(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = await client_with()
    monkeypatch.setattr(events, "BUFFER", 100)  # events a subscriber may fall behind: fewer, for a shorter test
    monkeypatch.setattr(events, "BATCH", 20)  # and events read at once, kept below it as the service's are
    caplog.set_level(logging.INFO, logger=events.__name__)
    names = [f"{n:04} {'x' * 195}" for n in range(STUCK_LOAD)]  # 200 characters each, the longest a name may be
    with await never_reading_subscriber(client):
        async with client.ws_connect("/events") as ws:
            await ws.send_json({"type": "ping"})
            await ws.receive_json(timeout=2)  # subscribed

            # Read while the creates go on, as a live client does; no timeout per event: the test's own bounds
            # the wait, however slow a busy machine makes the delivery.
            reading = asyncio.create_task(receive_all(ws, len(names)))
            in_flight = asyncio.Semaphore(CREATES_AT_ONCE)

            async def create(name: str) -> aiohttp.ClientResponse:
                async with in_flight:
                    return await client.post("/items", json={"name": name})

            created = await concurrently(create(name) for name in names)
            assert {response.status for response in created} == {201}
            received = await reading

        assert sorted(event["item"]["name"] for event in received) == names
        assert [event["id"] for event in received] == sorted(event["id"] for event in received)
        assert "closing an event subscriber (too slow" in caplog.text  # the one that reads nothing, and only it
        async with client.ws_connect("/events") as late:
            await late.send_json({"type": "ping"})
            await late.receive_json()
            await client.post("/items", json={"name": "after the crowd"})
            assert (await late.receive_json())["item"]["name"] == "after the crowd"

        started = time.monotonic()
        await client.server.close()
        # Waiting on the subscriber that reads nothing would take the server's shutdown timeout (60 s): any bound far
        # below that and far above a close on a busy machine tells the two apart.
        assert time.monotonic() - started < SHUTDOWN_BOUND, "shutdown waited on the subscriber that reads nothing"
