"""P1 - a basic async test and an async context manager.

Use a plain `async def test_*`: in auto mode pytest-asyncio runs it on the
session's loop, no marker needed. `async with` works the same inside it.
"""

from __future__ import annotations

from {{ cookiecutter.package_name }}.items import ItemStore, NewItem

from .support.clients import Client


async def test_store_returns_what_was_added(store: ItemStore) -> None:
    added = await store.add(NewItem(name="kettle", quantity=2))

    assert await store.get(added.id) == added


async def test_health_answers_inside_an_async_context_manager(client: Client) -> None:
    async with client.get("/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
