"""PostgreSQL connections lent to statements first come, first served, each wait bounded.

asyncpg's pool lets a request that just came take a connection given back
before one that had waited, so under load some waited ten times the median
or more; and giving one back to it costs a task and a timer. The lender
keeps its own queue: a connection given back while statements wait goes
straight to the one that has waited longest, with no trip through the pool.
Deadlines come in arrival order, so one timer, armed for the oldest wait,
serves them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
Lease = AbstractAsyncContextManager[Connection]
Acquire = Callable[[], Lease]
Lent = tuple[Lease, Connection]
# Server errors, a closed or broken connection (InternalClientError: a connection cut mid-query), no route.
CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)

log = logging.getLogger(__name__)


def said(error: Exception) -> str:
    """What a driver error says, or its kind when it says nothing."""
    return str(error) or type(error).__name__


def reusable(connection: Connection) -> bool:
    """Whether `connection` can serve another statement: it is open (the store's statements leave no transaction)."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # it closed, and asyncpg's pool took it back from the proxy that lent it
        return False


class Lender:
    """At most `capacity` connections from `acquire` out at once; the rest wait in arrival order, `timeout` at most."""

    def __init__(self, acquire: Acquire, capacity: int, timeout: float) -> None:
        self._acquire = acquire
        self._free = capacity  # places a statement may take at once: only while none waits
        self.timeout = timeout  # seconds a statement may wait for its turn and its connection together
        # The waits, oldest first: each is handed a connection, or None for a place to open one in.
        self._waiting: deque[tuple[float, asyncio.Future[Lent | None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def borrow(self) -> Lent:
        """A connection and the lease to give it back by; TimeoutError once waiting and connecting took the timeout."""
        if self._free and not self._waiting:
            self._free -= 1
            return await self._open(None)
        loop = asyncio.get_running_loop()
        wait = (loop.time() + self.timeout, loop.create_future())
        self._waiting.append(wait)
        if self._timer is None:
            self._timer = loop.call_at(wait[0], self._expire)
        try:
            lent = await wait[1]
        except asyncio.CancelledError:
            turn = wait[1]
            if turn.cancelled():
                with contextlib.suppress(ValueError):  # already taken off by whoever found it cancelled
                    self._waiting.remove(wait)
            elif turn.exception() is None:  # handed a connection or a place before the cancel came: pass it on
                if (handed := turn.result()) is None:
                    self._vacate()
                else:
                    await self.give_back(*handed)
            raise
        # A place without a connection (the one given back broke): the connecting counts against the same deadline.
        return lent if lent is not None else await self._open(wait[0])

    async def give_back(self, lease: Lease, connection: Connection) -> None:
        """Hand `connection` to the oldest wait, if it can serve another statement; else return it to the pool."""
        if self._waiting and reusable(connection) and self._hand((lease, connection)):
            return
        try:
            await lease.__aexit__(None, None, None)
        except CONNECTION_ERRORS as error:  # the statement's answer is in hand, and the pool replaces a broken one
            log.warning("postgresql: a connection broke as it was given back (%s); the answer stands", said(error))
        finally:
            self._vacate()

    async def _open(self, deadline: float | None) -> Lent:
        """A connection from `acquire`, for a place already taken (given up again should that fail)."""
        lease = self._acquire()
        try:
            if deadline is None:
                return lease, await lease.__aenter__()
            async with asyncio.timeout_at(deadline):
                return lease, await lease.__aenter__()
        except BaseException:
            self._vacate()
            raise

    def _hand(self, lent: Lent | None) -> bool:
        """Give `lent` to the oldest wait still on; False when none is."""
        while self._waiting:
            _, turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(lent)
                return True
        return False

    def _vacate(self) -> None:
        """A place with no connection in it: to the oldest wait, to open one in, or free for the next to come."""
        if not self._hand(None):
            self._free += 1

    def _expire(self) -> None:
        """The timer: each wait past its deadline ends with TimeoutError; armed again for the oldest left."""
        self._timer = None
        loop = asyncio.get_running_loop()
        while self._waiting:
            deadline, turn = self._waiting[0]
            if deadline > loop.time():
                self._timer = loop.call_at(deadline, self._expire)
                return
            self._waiting.popleft()
            if not turn.done():
                turn.set_exception(TimeoutError())
