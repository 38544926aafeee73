"""Waiting for a condition that no event signals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHECK_EVERY = 0.01  # seconds between checks


async def until(condition: Callable[[], bool]) -> None:
    """Return once `condition()` holds.

    No bound of its own: the test's time limit ends a wait that never does, with this line in the report.
    """
    while not condition():  # noqa: ASYNC110 - nothing signals it: the condition is all there is to wait on
        await asyncio.sleep(CHECK_EVERY)
