"""P13 - an asyncio.Queue with a producer and a consumer.

Handlers produce events with `Hub.publish` (never blocking the request);
the hub's worker consumes them and sends each to every subscriber.
`queue.join()` waits until the consumer has handled everything queued.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from {{ cookiecutter.package_name }}.events import Hub
from {{ cookiecutter.package_name }}.items import Item

from .support.subscribers import RecordingSubscriber


@pytest.fixture
async def running_hub() -> AsyncIterator[Hub]:
    """Function scope: a hub whose worker runs until the test ends."""
    hub = Hub()
    worker = asyncio.create_task(hub.run())
    yield hub
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker


async def test_consumer_delivers_events_in_the_order_produced(running_hub: Hub) -> None:
    subscriber = RecordingSubscriber()
    running_hub.subscribers.add(subscriber)

    for n in range(1, 4):
        running_hub.publish("item.created", Item(id=n, name=f"item {n}", quantity=n))
    await running_hub.queue.join()

    assert [json.loads(message)["item"]["id"] for message in subscriber.messages] == [1, 2, 3]


async def test_every_subscriber_gets_every_event(running_hub: Hub) -> None:
    subscribers = [RecordingSubscriber() for _ in range(3)]
    running_hub.subscribers.update(subscribers)

    running_hub.publish("item.deleted", Item(id=7, name="gone", quantity=0))
    await running_hub.queue.join()

    assert all(len(subscriber.messages) == 1 for subscriber in subscribers)


async def test_full_queue_drops_the_event_instead_of_blocking_the_producer() -> None:
    hub = Hub(maxsize=1)  # no worker: nothing consumes
    item = Item(id=1, name="one", quantity=1)

    hub.publish("item.created", item)
    hub.publish("item.created", item)

    assert hub.queue.qsize() == 1
