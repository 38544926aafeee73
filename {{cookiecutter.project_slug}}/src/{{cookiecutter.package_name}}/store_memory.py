"""Items kept in the process's memory: quick to start, gone when it stops."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web

from .items import EVENT_PRUNE_EVERY, EVENT_RETENTION, Item, ItemEvent, NewItem
from .keys import STORE


class MemoryItemStore:
    """A dict of items and a list of their events; lost when the process ends."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._ids = itertools.count(1)
        self._events: list[ItemEvent] = []
        self._event_ids = itertools.count(1)

    def _record(self, kind: str, item: Item) -> None:
        event = ItemEvent(next(self._event_ids), kind, item)
        self._events.append(event)
        if event.id % EVENT_PRUNE_EVERY == 0:
            del self._events[:-EVENT_RETENTION]

    async def add(self, new: NewItem) -> Item:
        item = Item(id=next(self._ids), name=new.name, quantity=new.quantity)
        self._items[item.id] = item
        self._record("item.created", item)
        return item

    async def get(self, item_id: int) -> Item | None:
        return self._items.get(item_id)

    async def list(self, limit: int, offset: int) -> list[Item]:
        return list(self._items.values())[offset : offset + limit]  # a slice, unlike islice, takes any offset

    async def delete(self, item_id: int) -> Item | None:
        item = self._items.pop(item_id, None)
        if item is not None:
            self._record("item.deleted", item)
        return item

    async def ping(self) -> None:
        """Always ready: memory cannot go away while the process runs."""

    async def events_after(self, after: int, limit: int) -> Sequence[ItemEvent]:
        start = bisect.bisect_right(self._events, after, key=lambda event: event.id)
        return self._events[start : start + limit]

    async def last_event_id(self) -> int:
        return self._events[-1].id if self._events else 0

    async def watch(self, wake: Callable[[], None]) -> None:
        """Nothing to watch: only this process writes here, and its handlers wake the hub themselves."""


async def store_context(app: web.Application) -> AsyncIterator[None]:
    """Give the app an empty in-memory store."""
    app[STORE] = MemoryItemStore()
    yield
