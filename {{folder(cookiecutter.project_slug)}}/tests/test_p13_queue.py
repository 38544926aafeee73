"""P13 - an asyncio.Queue between a producer and its consumers.

The hub (the producer) offers each new event to every subscription's
bounded queue with `put_nowait`, so it never waits on anyone; each
subscription's sender task (a consumer) takes events out in order. A full
queue closes its subscriber instead of holding up the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSCloseCode

from {{ cookiecutter.package_name }} import events
from {{ cookiecutter.package_name }}.events import Hub
from {{ cookiecutter.package_name }}.items import ItemStore, NewItem

from .support.subscribers import RecordingSubscriber, StalledSubscriber


@pytest.fixture
async def hub(store: ItemStore) -> AsyncIterator[Hub]:
    """Function scope: a hub reading the test's store until the test ends."""
    hub = Hub(store)
    delivery = asyncio.create_task(hub.run())
    yield hub
    hub.stop()
    await delivery


async def test_consumer_sends_events_in_the_order_produced(hub: Hub, store: ItemStore) -> None:
    subscriber = RecordingSubscriber()
    async with hub.subscribe(subscriber, None, after=None):
        for n in range(3):
            await store.add(NewItem(name=f"item {n}", quantity=n))
        hub.wake()

        assert await subscriber.received(3) == ["item 0", "item 1", "item 2"]


async def test_every_subscriber_gets_every_event(hub: Hub, store: ItemStore) -> None:
    subscribers = [RecordingSubscriber() for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for subscriber in subscribers:
            await stack.enter_async_context(hub.subscribe(subscriber, None, None))
        await store.add(NewItem(name="for everyone", quantity=1))
        hub.wake()

        assert [await subscriber.received(1) for subscriber in subscribers] == [["for everyone"]] * 3


async def test_full_queue_closes_its_subscriber_instead_of_blocking_the_producer(
    store: ItemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "BUFFER", 2)
    stalled = StalledSubscriber()
    async with Hub(store).subscribe(stalled, None, None) as subscription:
        for event_id in range(1, 5):
            subscription.offer(event_id, "{}")  # returns at once, even to a subscriber that takes nothing

        assert await stalled.closed() == WSCloseCode.TRY_AGAIN_LATER
