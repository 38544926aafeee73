"""Items kept in the process's memory: quick to start, gone when it stops."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

from aiohttp import web

from .items import Item, NewItem
from .keys import STORE


class MemoryItemStore:
    """A dict of items; lost when the process ends."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._ids = itertools.count(1)

    async def add(self, new: NewItem) -> Item:
        item = Item(id=next(self._ids), name=new.name, quantity=new.quantity)
        self._items[item.id] = item
        return item

    async def get(self, item_id: int) -> Item | None:
        return self._items.get(item_id)

    async def list(self, limit: int, offset: int) -> list[Item]:
        return list(self._items.values())[offset : offset + limit]  # a slice, unlike islice, takes any offset

    async def delete(self, item_id: int) -> Item | None:
        return self._items.pop(item_id, None)

    async def ping(self) -> None:
        """Always ready: memory cannot go away while the process runs."""


async def store_context(app: web.Application) -> AsyncIterator[None]:
    """Give the app an empty in-memory store."""
    app[STORE] = MemoryItemStore()
    yield
