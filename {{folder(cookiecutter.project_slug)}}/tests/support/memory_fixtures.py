"""Item store fixtures: a fresh in-memory store per test."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.store_memory import MemoryItemStore

from .clients import AgeKeys, KeptKeys


@pytest.fixture(scope="session")
def session_store() -> MemoryItemStore:
    """Session scope: the store of the shared app."""
    return MemoryItemStore()


@pytest.fixture
def store() -> MemoryItemStore:
    """Function scope: an empty store per test."""
    return MemoryItemStore()


@pytest.fixture
def age_keys(store: MemoryItemStore) -> AgeKeys:
    """Function scope: `await age_keys(seconds)` makes every idempotency key of the test's store older."""

    async def age(seconds: float) -> None:
        for key, used in store.keys.items():
            store.keys[key] = used._replace(at=used.at - seconds)

    return age


@pytest.fixture
def kept_keys(store: MemoryItemStore) -> KeptKeys:
    """Function scope: `await kept_keys()` counts the idempotency keys of the test's store."""

    async def count() -> int:
        return len(store.keys)

    return count


@pytest.fixture
def service_env() -> dict[str, str]:
    """Function scope: environment for a real service process (nothing to add: items live in its memory)."""
    return {}
