"""The items resource: its data, its validation rules and the store contract."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

NAME_MAX_LENGTH = 200
QUANTITY_MAX = 2**31 - 1
ID_MAX = 2**63 - 1
ID_MAX_DIGITS = len(str(ID_MAX))
PAGE_MAX = 100
PAGE_LIMIT = 20  # the page size of a list request that names none
# Events kept for subscribers that resume: those with the newest EVENT_RETENTION ids. Every EVENT_PRUNE_EVERY-th
# event removes older ones{% if cookiecutter.database != "none" %} (the store's migrations say the same numbers){% endif %}.
EVENT_RETENTION = 10_000
EVENT_PRUNE_EVERY = 1_000
# How long POST /items remembers an Idempotency-Key: a retry within it gets the item the key created, a request
# after it creates a new one. Each new key forgets up to a batch of expired ones, oldest first{% if cookiecutter.database != "none" %} (the store's SQL
# says the same batch){% endif %}.
IDEMPOTENCY_KEY_TTL = 24 * 60 * 60  # seconds
IDEMPOTENCY_KEY_PRUNE_BATCH = 100
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII: what a UUID, a ULID or a hash is written in


# What a name may not hold, by kind: everything else, from accents to emoji joined with U+200D, is text people
# write. Controls and lone surrogates corrupt logs and break UTF-8; bidirectional overrides make text display in
# an order other than the one stored ("Trojan Source").
UNSAFE_KINDS = {
    "".join(map(chr, [*range(0x00, 0x20), *range(0x7F, 0xA0)])): "a control character",
    "".join(map(chr, range(0xD800, 0xE000))): "a lone surrogate",
    "".join(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])): "a bidirectional override",
}
UNSAFE_CHARACTER = re.compile("[" + re.escape("".join(UNSAFE_KINDS)) + "]")


class StoreUnavailable(RuntimeError):
    """The store cannot serve requests now (down, too slow or refusing); a retry later may work."""


class ValidationError(ValueError):
    """A client sent an item or query that breaks the rules below."""


class KeyReused(ValueError):
    """A client sent an Idempotency-Key it used for another item."""


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item as a client submits it."""

    name: str
    quantity: int

    def digest(self) -> bytes:
        """What tells this item from any other, as stored with the idempotency key it was created under."""
        return hashlib.sha256(json.dumps([self.name, self.quantity]).encode()).digest()


@dataclass(slots=True)  # not frozen: a frozen dataclass is slower to build, and one is built for every item read
class Item:
    """An item as stored, with the id the store gave it."""

    id: int
    name: str
    quantity: int

    def to_json(self) -> dict[str, object]:
        """The item as a JSON-ready mapping."""
        return {"id": self.id, "name": self.name, "quantity": self.quantity}


@dataclass(slots=True)
class ItemEvent:
    """A change to an item, as the store recorded it with the change: ids grow in the order changes were made."""

    id: int
    type: str  # item.created or item.deleted
    item: Item

    def message(self) -> str:
        """The text frame subscribers receive."""
        return json.dumps({"id": self.id, "type": self.type, "item": self.item.to_json()})


class ItemStore(Protocol):
    """Where items live: the app's store module implements this, raising StoreUnavailable for every failure."""

    async def add(self, new: NewItem) -> Item:
        """Store a new item and return it with its id."""
        ...

    async def add_once(self, new: NewItem, key: str) -> tuple[Item, bool]:
        """Store a new item under an idempotency key and return it with True, or the key's item with False.

        A key used in the last IDEMPOTENCY_KEY_TTL seconds gets the item it
        created then (see `replayed`). The item and the key are committed
        together, and of several concurrent calls with a key one creates it.
        """
        ...

    async def get(self, item_id: int) -> Item | None:
        """The item with this id, or None."""
        ...

    async def list(self, limit: int, offset: int) -> list[Item]:
        """Items ordered by id, one page of them."""
        ...

    async def delete(self, item_id: int) -> Item | None:
        """Remove the item and return it; None when there was none."""
        ...

    async def ping(self) -> None:
        """Return when the store can take reads and writes now; raise StoreUnavailable saying why when it cannot.

        `/ready` calls it, so it must stay cheap enough to poll every second and write nothing.
        """
        ...

    async def events_after(self, after: int, limit: int) -> Sequence[ItemEvent]:
        """The events recorded with each add and delete, oldest first, from the one after id `after`."""
        ...

    async def last_event_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        ...

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever another process may have added events, until cancelled.

        Return at once when no other process can add any.
        """
        ...


def parse_new_item(data: object) -> NewItem:
    """Check a decoded JSON body and turn it into a NewItem."""
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = sorted(set(data) - {"name", "quantity"})
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}")
    return NewItem(name=_parse_name(data.get("name")), quantity=_parse_quantity(data.get("quantity", 0)))


def parse_idempotency_key(values: Sequence[str]) -> str | None:
    """The value of the request's Idempotency-Key header, if it has one; more than one is refused."""
    if not values:
        return None
    if len(values) > 1:
        raise ValidationError("send one 'Idempotency-Key' header, not several")
    if not IDEMPOTENCY_KEY.fullmatch(values[0]):
        raise ValidationError("'Idempotency-Key' must be 1 to 255 visible ASCII characters")
    return values[0]


def json_integer(text: str) -> int:
    """An integer of a JSON body; one with more digits than any field allows is read as ±(ID_MAX + 1).

    So its field answers with its range, and no time goes into converting thousands of digits.
    """
    if len(text) <= ID_MAX_DIGITS:
        return int(text)
    return -(ID_MAX + 1) if text.startswith("-") else ID_MAX + 1


def replayed(new: NewItem, digest: bytes, item_id: int) -> Item:
    """The item an idempotency key created (as it was then), when `new` is that item again; else KeyReused."""
    if digest != new.digest():
        hours = IDEMPOTENCY_KEY_TTL // 3600
        raise KeyReused(f"this Idempotency-Key was used for another item in the last {hours} h; send a new key")
    return Item(item_id, new.name, new.quantity)


def _parse_name(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("'name' is required and must be a string")
    name = value.strip()
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        raise ValidationError(f"'name' must hold 1 to {NAME_MAX_LENGTH} characters")
    unsafe = UNSAFE_CHARACTER.search(name)
    if unsafe:
        character = unsafe[0]
        kind = next(kind for characters, kind in UNSAFE_KINDS.items() if character in characters)
        raise ValidationError(
            f"'name' must not contain U+{ord(character):04X} ({kind}), found at character {unsafe.start() + 1}"
        )
    return name


def _parse_quantity(value: object) -> int:
    if isinstance(value, float) and value.is_integer():  # JSON has one kind of number: 3.0 is the integer 3
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("'quantity' must be an integer")
    if not 0 <= value <= QUANTITY_MAX:
        raise ValidationError(f"'quantity' must be from 0 to {QUANTITY_MAX}")
    return value


def parse_item_id(text: str) -> int | None:
    """The id in a URL, or None when no item can have it."""
    if len(text) > ID_MAX_DIGITS or not _is_digits(text):
        return None
    item_id = int(text)
    return item_id if 1 <= item_id <= ID_MAX else None


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    """The (limit, offset) pair of a list request, with defaults."""
    limit = _parse_bounded(query, "limit", default=PAGE_LIMIT, low=1, high=PAGE_MAX)
    offset = _parse_bounded(query, "offset", default=0, low=0, high=ID_MAX)
    return limit, offset


def parse_after(query: Mapping[str, str]) -> int | None:
    """The event id a subscriber resumes after, if it gave one."""
    return _parse_bounded(query, "after", default=0, low=0, high=ID_MAX) if "after" in query else None


def _parse_bounded(query: Mapping[str, str], key: str, *, default: int, low: int, high: int) -> int:
    text = query.get(key)
    if text is None:
        return default
    if not _is_digits(text) or len(text) > len(str(high)) or not low <= int(text) <= high:
        raise ValidationError(f"'{key}' must be an integer from {low} to {high}")
    return int(text)


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdecimal()
