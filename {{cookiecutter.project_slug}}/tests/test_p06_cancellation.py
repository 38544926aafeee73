"""P6 - cancellation, and the cleanup that must run when it happens.

A task can be cancelled at any await. Test that it stops, that
CancelledError reaches whoever awaits it, and that its `finally` blocks ran:
here, the event worker closing its subscribers when the app shuts it down.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import WSCloseCode, web

from {{ cookiecutter.package_name }}.events import Hub, hub_context, shutdown_hub
from {{ cookiecutter.package_name }}.keys import HUB

from .support.clients import Client
from .support.subscribers import RecordingSubscriber


async def test_cancelled_worker_raises_cancelled_error() -> None:
    worker = asyncio.create_task(Hub().run())
    await asyncio.sleep(0)

    worker.cancel()

    with pytest.raises(asyncio.CancelledError):
        await worker


async def test_cancelled_worker_closes_its_subscribers() -> None:
    hub = Hub()
    subscriber = RecordingSubscriber()
    hub.subscribers.add(subscriber)
    worker = asyncio.create_task(hub.run())
    await asyncio.sleep(0)

    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker

    assert subscriber.close_code == WSCloseCode.GOING_AWAY
    assert not hub.subscribers


async def test_shutdown_delivers_queued_events_then_cleanup_cancels_the_worker() -> None:
    app = web.Application()
    context = hub_context(app)
    running = asyncio.all_tasks()
    await anext(context)
    [worker] = asyncio.all_tasks() - running  # the delivery worker the context started
    hub = app[HUB]
    subscriber = RecordingSubscriber()
    hub.subscribers.add(subscriber)
    hub.queue.put_nowait("queued before shutdown")

    await shutdown_hub(app)  # on_shutdown
    with pytest.raises(StopAsyncIteration):
        await anext(context)  # on_cleanup: the worker is cancelled and awaited

    assert subscriber.messages == ["queued before shutdown"]
    assert subscriber.close_code == WSCloseCode.GOING_AWAY
    assert worker.cancelled()  # awaited to the end, not left to finish some time later


async def test_stopping_the_server_tells_connected_subscribers_it_is_going_away(client: Client) -> None:
    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})
        await ws.receive_json(timeout=2)  # subscribed

        async with asyncio.timeout(5):  # the server must not wait on its open websockets
            await client.server.close()

        assert (await ws.receive(timeout=2)).data == WSCloseCode.GOING_AWAY
