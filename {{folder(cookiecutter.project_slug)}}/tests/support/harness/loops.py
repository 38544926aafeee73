"""The event loops the guards watch: every loop made by a factory conftest.py's hook chooses."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable, Generator
from typing import Any

import pytest

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LoopCallback = Callable[[asyncio.AbstractEventLoop], None]

LOOPS = pytest.StashKey["weakref.WeakSet[asyncio.AbstractEventLoop]"]()
WRAPPERS = pytest.StashKey[dict[LoopFactory, LoopFactory]]()  # one per factory: pytest-asyncio keys loops by factory
ON_NEW_LOOP = pytest.StashKey[list[LoopCallback]]()


def watched_loops(config: pytest.Config) -> weakref.WeakSet[asyncio.AbstractEventLoop]:
    """The loops made so far (closed ones included, until they are freed)."""
    return config.stash.setdefault(LOOPS, weakref.WeakSet())


def on_new_loop(config: pytest.Config, callback: LoopCallback) -> None:
    """Call `callback` with each loop made from now on, as it is made."""
    config.stash.setdefault(ON_NEW_LOOP, []).append(callback)


def open_loops(config: pytest.Config) -> list[asyncio.AbstractEventLoop]:
    return [loop for loop in list(watched_loops(config)) if not loop.is_closed()]


def all_tasks(config: pytest.Config) -> set[asyncio.Task[Any]]:
    """Every task, done or not, of every open watched loop."""
    return {task for loop in open_loops(config) for task in asyncio.all_tasks(loop)}


@pytest.hookimpl(wrapper=True)
def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Generator[None, Any, Any]:
    """The factories conftest.py's hook chooses, each making loops the guards watch."""
    factories = yield
    if factories is None:
        return None
    wrappers = config.stash.setdefault(WRAPPERS, {})
    for factory in factories.values():
        if factory not in wrappers:
            wrappers[factory] = _watching(config, factory)
    return {name: wrappers[factory] for name, factory in factories.items()}


def _watching(config: pytest.Config, factory: LoopFactory) -> LoopFactory:
    @functools.wraps(factory)
    def new_loop() -> asyncio.AbstractEventLoop:
        loop = factory()
        watched_loops(config).add(loop)
        for callback in config.stash.get(ON_NEW_LOOP, []):
            callback(loop)
        return loop

    return new_loop
