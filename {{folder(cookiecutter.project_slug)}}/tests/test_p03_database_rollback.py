"""P3 - a database fixture with per-test rollback.

The `store` fixture opens a transaction before each test and rolls it back
after; the app under test is handed that same store, so rows written through
HTTP are visible inside the test and gone before the next one.
"""

from __future__ import annotations

from {{ cookiecutter.package_name }}.items import ItemStore, NewItem

from .support.clients import Client


async def test_app_sees_rows_the_test_wrote(store: ItemStore, client: Client) -> None:
    item = await store.add(NewItem(name="written by the test", quantity=1))

    response = await client.get(f"/items/{item.id}")

    assert response.status == 200
    assert await response.json() == item.to_json()


async def test_rows_written_through_http_stay_in_this_test(store: ItemStore, client: Client) -> None:
    response = await client.post("/items", json={"name": "written over HTTP", "quantity": 3})

    assert response.status == 201
    assert [item.name for item in await store.list(limit=10, offset=0)] == ["written over HTTP"]


async def test_each_test_starts_with_an_empty_table(store: ItemStore) -> None:
    assert await store.list(limit=10, offset=0) == []
