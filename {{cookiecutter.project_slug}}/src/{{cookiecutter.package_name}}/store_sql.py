"""The item queries, written once for every SQL database the template offers."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Protocol

from .items import Item, NewItem

COLUMNS = "id, name, quantity"


class Row(Protocol):
    """A result row as either driver returns it: its columns by position."""

    def __getitem__(self, index: int, /) -> Any: ...


class SqlStore(abc.ABC):
    """An ItemStore whose subclasses only say how to run one statement."""

    @abc.abstractmethod
    async def _rows(self, sql: str, *args: object) -> Sequence[Row]:
        """Run one statement with numbered parameters ($1, $2, ...); raise DatabaseUnavailable on failure."""

    async def _items(self, sql: str, *args: object) -> list[Item]:
        return [Item(id=row[0], name=row[1], quantity=row[2]) for row in await self._rows(sql, *args)]

    async def add(self, new: NewItem) -> Item:
        sql = f"INSERT INTO items (name, quantity) VALUES ($1, $2) RETURNING {COLUMNS}"
        [item] = await self._items(sql, new.name, new.quantity)
        return item

    async def get(self, item_id: int) -> Item | None:
        found = await self._items(f"SELECT {COLUMNS} FROM items WHERE id = $1", item_id)
        return found[0] if found else None

    async def list(self, limit: int, offset: int) -> list[Item]:
        return await self._items(f"SELECT {COLUMNS} FROM items ORDER BY id LIMIT $1 OFFSET $2", limit, offset)

    async def delete(self, item_id: int) -> Item | None:
        found = await self._items(f"DELETE FROM items WHERE id = $1 RETURNING {COLUMNS}", item_id)
        return found[0] if found else None

    async def ping(self) -> None:
        await self._rows("SELECT 1 FROM items LIMIT 0")
