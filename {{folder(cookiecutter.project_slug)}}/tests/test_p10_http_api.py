"""P10 - the aiohttp app tested through `aiohttp_client`.

`aiohttp_client(app)` (wrapped by the `client` fixture in conftest.py) serves
the real app on a free local port and gives a client for it: routing,
validation and JSON errors are tested exactly as a caller meets them. Arrange
with the store, act over HTTP, assert on the response and on the store.
The full API contract, error by error, is in test_api_contract.py.
"""

from __future__ import annotations

from {{ cookiecutter.package_name }}.items import ItemStore, NewItem

from .support.clients import JSON_HEADERS, Client


async def test_create_returns_the_item_and_its_location(client: Client) -> None:
    response = await client.post("/items", json={"name": "  lamp ", "quantity": 4})

    assert response.status == 201
    item = await response.json()
    assert item == {"id": item["id"], "name": "lamp", "quantity": 4}
    assert response.headers["Location"] == f"/items/{item['id']}"


async def test_get_returns_a_stored_item(client: Client, store: ItemStore) -> None:
    item = await store.add(NewItem(name="desk", quantity=1))

    response = await client.get(f"/items/{item.id}")

    assert await response.json() == {"id": item.id, "name": "desk", "quantity": 1}


async def test_delete_removes_the_item(client: Client, store: ItemStore) -> None:
    item = await store.add(NewItem(name="old", quantity=0))

    assert (await client.delete(f"/items/{item.id}")).status == 204
    assert await store.get(item.id) is None
    assert (await client.delete(f"/items/{item.id}")).status == 404


async def test_a_client_mistake_gets_a_json_4xx_not_a_500(client: Client) -> None:
    response = await client.post("/items", data=b'{"name": ', headers=JSON_HEADERS)

    assert (response.status, response.content_type) == (400, "application/json")
    assert (await response.json())["error"]["code"] == "malformed_json"
