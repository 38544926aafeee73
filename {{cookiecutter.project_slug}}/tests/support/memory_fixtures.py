"""Item store fixtures: a fresh in-memory store per test."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.store_memory import MemoryItemStore


@pytest.fixture(scope="session")
def session_store() -> MemoryItemStore:
    """Session scope: the store of the shared app."""
    return MemoryItemStore()


@pytest.fixture
def store() -> MemoryItemStore:
    """Function scope: an empty store per test."""
    return MemoryItemStore()


@pytest.fixture
def service_env() -> dict[str, str]:
    """Function scope: environment for a real service process (nothing to add: items live in its memory)."""
    return {}
