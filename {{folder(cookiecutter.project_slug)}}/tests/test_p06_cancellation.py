"""P6 - cancellation, and the cleanup that must run when it happens.

A task can be cancelled at any await. Test that it stops, that
CancelledError reaches whoever awaits it, and that the code which cancels
it also waits for it: here, the hub's tasks when the app shuts down.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import WSCloseCode, web

from {{ cookiecutter.package_name }}.events import Hub, hub_context, shutdown_hub
from {{ cookiecutter.package_name }}.items import ItemStore
from {{ cookiecutter.package_name }}.keys import HUB, STORE

from .support.clients import Client
from .support.subscribers import RecordingSubscriber


async def test_cancelled_hub_raises_cancelled_error(store: ItemStore) -> None:
    delivery = asyncio.create_task(Hub(store).run())
    await asyncio.sleep(0)

    delivery.cancel()

    with pytest.raises(asyncio.CancelledError):
        await delivery


async def test_leaving_a_subscription_cancels_its_sender_and_waits_for_it(store: ItemStore) -> None:
    async with Hub(store).subscribe(RecordingSubscriber(), None, None) as subscription:
        await asyncio.sleep(0)  # the sender is now waiting for events

    assert subscription.sender.cancelled()  # awaited to the end, not left to finish some time later


async def test_shutdown_closes_subscribers_then_cleanup_cancels_the_hub_tasks(store: ItemStore) -> None:
    app = web.Application()
    app[STORE] = store
    context = hub_context(app)
    running = asyncio.all_tasks()
    await anext(context)
    started = asyncio.all_tasks() - running  # the hub's reader and the store's watch
    subscriber = RecordingSubscriber()

    async with app[HUB].subscribe(subscriber, None, None):
        await shutdown_hub(app)  # on_shutdown

    with pytest.raises(StopAsyncIteration):
        await anext(context)  # on_cleanup
    assert subscriber.close_code == WSCloseCode.GOING_AWAY
    assert len(started) == 2
    assert all(task.done() for task in started)


async def test_stopping_the_server_tells_connected_subscribers_where_to_resume(client: Client) -> None:
    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})
        await ws.receive_json(timeout=2)  # subscribed

        async with asyncio.timeout(5):  # the server must not wait on its open websockets
            await client.server.close()

        closing = await ws.receive(timeout=2)
    assert closing.data == WSCloseCode.GOING_AWAY
    assert "resume with after=" in str(closing.extra)
