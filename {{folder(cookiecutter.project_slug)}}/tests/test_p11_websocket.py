"""P11 - a websocket round trip.

`client.ws_connect` opens a real websocket to the app under test. Send a
frame, await the answer with a timeout, and check events pushed by the
server when something happens elsewhere (here, an item created over HTTP).
"""

from __future__ import annotations

from aiohttp import WSMsgType

from .support.clients import Client


async def test_ping_gets_pong(client: Client) -> None:
    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})

        assert await ws.receive_json(timeout=2) == {"type": "pong"}


async def test_created_item_is_pushed_to_subscribers(client: Client) -> None:
    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})
        await ws.receive_json(timeout=2)  # subscribed once the first answer arrives

        created = await (await client.post("/items", json={"name": "bell", "quantity": 1})).json()

        event = await ws.receive_json(timeout=2)
    assert (event["type"], event["item"]) == ("item.created", created)


async def test_a_subscriber_resuming_after_an_event_id_gets_what_it_missed(client: Client) -> None:
    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})
        await ws.receive_json(timeout=2)  # subscribed
        created = await (await client.post("/items", json={"name": "seen"})).json()
        seen = await ws.receive_json(timeout=2)
    await client.delete(f"/items/{created['id']}")  # while no one listened

    async with client.ws_connect(f"/events?after={seen['id']}") as ws:
        assert (await ws.receive_json(timeout=2))["type"] == "item.deleted"


async def test_bad_frames_get_an_error_message_not_a_disconnect(client: Client) -> None:
    frames = ["not json", "[1]", '"ping"', "3", "null", '{"type": "pong"}']
    async with client.ws_connect("/events") as ws:
        for frame in frames:
            await ws.send_str(frame)
        await ws.send_bytes(b"\x00")

        for _ in [*frames, b"\x00"]:
            assert (await ws.receive_json(timeout=2))["error"]["code"] == "bad_message"


async def test_oversized_frame_closes_with_1009(client: Client) -> None:
    async with client.ws_connect("/events") as ws:
        await ws.send_str("x" * 10_000)

        message = await ws.receive(timeout=2)

    assert message.type is WSMsgType.CLOSE
    assert message.data == 1009


async def test_plain_get_gets_a_json_400(client: Client) -> None:
    response = await client.get("/events")

    assert response.status == 400
    assert (await response.json())["error"]["code"] == "websocket_required"
