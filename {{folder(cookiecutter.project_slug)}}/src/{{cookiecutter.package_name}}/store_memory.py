"""Items kept in the process's memory: quick to start, gone when it stops (idempotency keys too)."""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import NamedTuple

from aiohttp import web

from .items import (
    EVENT_PRUNE_EVERY,
    EVENT_RETENTION,
    IDEMPOTENCY_KEY_PRUNE_BATCH,
    IDEMPOTENCY_KEY_TTL,
    Item,
    ItemEvent,
    NewItem,
    replayed,
)
from .keys import STORE


class UsedKey(NamedTuple):
    """What an idempotency key was used for, and when (time.monotonic)."""

    digest: bytes
    item_id: int
    at: float


class MemoryItemStore:
    """A dict of items and a list of their events; lost when the process ends."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._ids = itertools.count(1)
        self._events: list[ItemEvent] = []
        self._event_ids = itertools.count(1)
        self.keys: dict[str, UsedKey] = {}  # oldest first: a key used again moves to the end

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

    async def add_once(self, new: NewItem, key: str) -> tuple[Item, bool]:
        now = time.monotonic()
        used = self.keys.get(key)
        if used is not None and now - used.at < IDEMPOTENCY_KEY_TTL:
            return replayed(new, used.digest, used.item_id), False
        for old in list(itertools.islice(self.keys, IDEMPOTENCY_KEY_PRUNE_BATCH)):
            if now - self.keys[old].at < IDEMPOTENCY_KEY_TTL:
                break
            del self.keys[old]
        self.keys.pop(key, None)
        item = await self.add(new)
        self.keys[key] = UsedKey(new.digest(), item.id, now)
        return item, True

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
