"""Hangs: each phase of a test (setup, call, teardown) gets a time limit.

Past it, the test fails with where its tasks were stuck, and the run goes on.

The test body runs inside `asyncio.timeout`, and a watchdog on each loop
covers the fixtures' setup and teardown (the app's cleanup included). Past
the limit, the watchdog records where the stuck tasks wait, cancels them,
and stops the loop if they refuse to end. pytest-timeout (thread method)
keeps a longer limit for hangs outside the loop, where nothing else helps.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from types import FrameType
from typing import Any

import pytest

from .loops import on_new_loop, open_loops

TEST_TIMEOUT = 10.0  # seconds per phase (setup, call, teardown); @pytest.mark.timeout(N) overrides
STOP_GRACE = 2.0  # after cancelling stuck tasks, how long they get before the loop is stopped under them
# pytest-timeout's limit per test: three phases at their limit and the graces, then a margin. It only ever fires
# for a hang the loop cannot see (a blocking call in a sync fixture), and ends the whole run when it does.
THREAD_TIMEOUT_MARGIN = 30.0

LIMIT = pytest.StashKey[float]()  # a test's limit per phase
PHASE = pytest.StashKey["Phase | None"]()  # the phase running now


class Hung(Exception):
    """A phase's work, cancelled by its watchdog."""


def time_limit(item: pytest.Item) -> float:
    """`item`'s limit per phase, in seconds."""
    return item.stash[LIMIT]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[PHASE] = None
    on_new_loop(config, functools.partial(_guard_loop, config))


def _guard_loop(config: pytest.Config, loop: asyncio.AbstractEventLoop) -> None:
    """A new loop: its cancellations by a watchdog raise Hung; a loop made during a test's setup is watched too."""
    guarded = _cancelled_as_hung(config, loop.run_until_complete)
    loop.run_until_complete = guarded  # type: ignore[method-assign,assignment]
    if (phase := config.stash[PHASE]) is not None:
        phase.watch(loop)


def _cancelled_as_hung(config: pytest.Config, run_until_complete: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`run_until_complete`, raising Hung where the watchdog's cancellation ended the work.

    pytest goes on from an Exception in a fixture's teardown, but not from a CancelledError: that skips the test's
    other fixture finalizers, and later tests would then reuse those fixtures (their caplog, their blockbuster).
    """

    @functools.wraps(run_until_complete)
    def run(future: Any) -> Any:
        try:
            return run_until_complete(future)
        except asyncio.CancelledError as cancelled:
            phase = config.stash[PHASE]
            if phase is not None and phase.stacks():
                raise Hung("cancelled by the watchdog, past the test's time limit") from cancelled
            raise

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each test its limit, pytest-timeout's longer one, and each async test body its in-loop timeout."""
    for item in items:
        marker = item.get_closest_marker("timeout")
        limit = float(marker.args[0] if marker.args else marker.kwargs["timeout"]) if marker else TEST_TIMEOUT
        item.stash[LIMIT] = limit
        item.add_marker(pytest.mark.timeout(3 * (limit + STOP_GRACE) + THREAD_TIMEOUT_MARGIN), append=False)
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.obj = _with_timeout(item.obj, limit)


def _with_timeout(test: Callable[..., Awaitable[None]], limit: float) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def run_with_timeout(*args: Any, **kwargs: Any) -> None:
        async with asyncio.timeout(limit):
            await test(*args, **kwargs)

    return run_with_timeout


class Phase:
    """One phase (setup, call or teardown) of a test: its deadline, and a watchdog on each loop."""

    def __init__(self, config: pytest.Config, limit: float) -> None:
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.watchdogs = [Watchdog(loop, limit) for loop in open_loops(config)]

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watchdogs.append(Watchdog(loop, max(self.deadline - time.monotonic(), 0)))

    def stacks(self) -> str:
        return "\n".join(stack for watchdog in self.watchdogs for stack in watchdog.stacks).strip()

    def disarm(self) -> None:
        for watchdog in self.watchdogs:
            watchdog.disarm()


class Watchdog:
    """Cancels what a phase started on `loop` once it runs past `limit`; stops the loop when that is not enough.

    It keeps doing so every STOP_GRACE seconds until the phase ends: a task that swallows its cancellation
    must not hang the rest of the phase (or the loop's own shutdown) either.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: float) -> None:
        self.loop = loop
        self.before = set(asyncio.all_tasks(loop))
        self.stacks: list[str] = []
        self.handle: asyncio.TimerHandle = loop.call_later(limit, self.expire)

    def expire(self) -> None:
        stuck = [task for task in asyncio.all_tasks(self.loop) if task not in self.before and not task.done()]
        self.stacks.extend(stack for stack in map(_stack, stuck) if stack not in self.stacks)
        self.stacks.append("" if stuck else "(the loop was waiting on no task this test started)")
        for task in stuck:
            task.cancel()
        self.handle = self.loop.call_later(STOP_GRACE, self.stop)

    def stop(self) -> None:
        self.loop.stop()
        self.handle = self.loop.call_later(STOP_GRACE, self.expire)

    def disarm(self) -> None:
        if not self.loop.is_closed():
            self.handle.cancel()


def _suspended_generator(frame: FrameType) -> Any:
    """The async generator `frame` is awaiting: one of its locals, or an attribute of one (contextlib's `self.gen`)."""
    nearby = list(frame.f_locals.values())
    nearby += [attribute for value in list(nearby) for attribute in getattr(value, "__dict__", {}).values()]
    return next((value for value in nearby if inspect.isasyncgen(value) and value.ag_await), None)


def _stack(task: asyncio.Task[Any]) -> str:
    """Where `task` waits: its coroutine and every coroutine it awaits, outermost first."""
    frames: list[FrameType] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
        if frame is None:  # an async generator's __anext__() hides the generator: find it near the awaiting frame
            awaitable = _suspended_generator(frames[-1]) if frames else None
            continue
        frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    lines = [f"{task.get_name()} waits at:"]
    for frame in frames:
        lines.append(f'  File "{frame.f_code.co_filename}", line {frame.f_lineno}, in {frame.f_code.co_name}')
    return "\n".join(lines)


@contextlib.contextmanager
def watching(config: pytest.Config, limit: float) -> Iterator[Phase]:
    """Watchdogs on every loop, and on loops made meanwhile, for as long as the block runs."""
    config.stash[PHASE] = phase = Phase(config, limit)
    try:
        yield phase
    finally:
        config.stash[PHASE] = None
        phase.disarm()


def _guarded(item: pytest.Item, when: str, limit: float) -> Generator[None, None, None]:
    """Run one phase of `item` under the watchdogs; fail it, with the stuck tasks' stacks, when they fired."""
    with watching(item.config, limit) as phase:
        try:
            yield
        finally:
            if stacks := phase.stacks():
                pytest.fail(
                    f"{item.name}: {when} did not finish within {limit} s (set the limit with "
                    f"@pytest.mark.timeout(N)); its tasks were cancelled. Where they were waiting:\n{stacks}",
                    pytrace=False,
                )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    yield from _guarded(item, "setup", time_limit(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # The body's own asyncio.timeout fires first, with a plain traceback; this catches a body that ignores it.
    yield from _guarded(item, "call", time_limit(item) + STOP_GRACE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield from _guarded(item, "teardown", time_limit(item))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """Watch the session's own teardown too (it may be left to this point): the loop's shutdown must end."""
    with watching(session.config, TEST_TIMEOUT):
        yield
