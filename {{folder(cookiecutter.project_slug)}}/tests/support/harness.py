"""The guards around every test: a hang, a leak or a stalled loop fails the test it happened in.

A pytest plugin (listed in conftest.py's `pytest_plugins`); nothing here is
specific to this service. For each test:

- Hangs: the test body runs inside `asyncio.timeout`, and a watchdog on the
  loop covers its fixtures' setup and teardown (the app's cleanup included).
  Past the limit, the watchdog records where the stuck tasks wait, cancels
  them, and stops the loop if they refuse to end; the test fails with those
  stacks and the run goes on. `@pytest.mark.timeout(N)` sets the limit;
  pytest-timeout (thread method) keeps a longer limit for hangs outside the
  loop, where nothing else can help.
- Leaks: a task running the project's code (or, in asyncio's debug mode, one
  the project's code started), or a thread, that outlives the test fails it
  by name; so does an unclosed resource found by the garbage
  collector after its teardown (a ResourceWarning).
- Stalls: one step of the loop running longer than LOOP_STEP_LIMIT (CPU work,
  a forgotten blocking call) fails the test with the stack that held the
  loop. `@pytest.mark.loop_step_limit(seconds)` raises it for one test.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import os
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

TEST_TIMEOUT = 10.0  # seconds per phase (setup, call, teardown); @pytest.mark.timeout(N) overrides
THREAD_EXIT_GRACE = 0.5  # how long a thread gets to end after the test that started it
STOP_GRACE = 2.0  # after cancelling stuck tasks, how long they get before the loop is stopped under them
# pytest-timeout's limit per test: three phases at TEST_TIMEOUT and the graces, then a margin. It only ever fires
# for a hang the loop cannot see (a blocking call in a sync fixture), and ends the whole run when it does.
THREAD_TIMEOUT_MARGIN = 30.0
# The longest one turn of the loop may take (every callback ready at once: one ping of the stall monitor). The
# suite's longest turns (starting or closing 200 connections at once) take about 0.13 s on a quiet 2-core machine,
# and 0.55 s under coverage with two suites running side by side; 1 s leaves a slow CI runner its margin and
# still catches CPU work or a blocking call that stalls the service for a second. Shorter stalls are the job of
# tests that watch the loop (test_p14_blocking.py). asyncio's debug mode (--heavy) makes every step about three
# times slower (measured on this suite), so a loop in debug mode gets DEBUG_SLOWDOWN times the limit.
LOOP_STEP_LIMIT = 1.0
DEBUG_SLOWDOWN = 3
PING_INTERVAL = 0.02  # how often the stall monitor pings a running loop: a step is measured to within this
STACK_DEPTH = 8  # innermost frames of the loop thread's stack shown for a stall
HINTS = {
    "Changing state of started or joined application": (
        "An aiohttp Application can be started only once, so one app cannot go to `aiohttp_client(app)` in "
        "several tests. Share a started client instead (a session-scoped `TestClient(TestServer(app))`, like "
        "`shared_client` in conftest.py and tests/test_p04_shared_fixtures.py), or build the app per test."
    ),
}

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
LIMIT = pytest.StashKey[float]()
STEP_LIMIT = pytest.StashKey[float]()
BEFORE = pytest.StashKey[tuple[set[asyncio.Task[Any]], set[threading.Thread]]]()
LONG_LIVED: set[object] = set()  # tasks and threads started by session-, package-, module- or class-scoped fixtures
EXIT_STATUS = pytest.StashKey[int]()


LoopFactory = Callable[[], asyncio.AbstractEventLoop]
WATCHED: dict[LoopFactory, LoopFactory] = {}  # one wrapper per factory: pytest-asyncio keys its loops by factory


def watched(factory: LoopFactory) -> LoopFactory:
    """`factory`, making loops the guards watch."""

    @functools.wraps(factory)
    def new_loop() -> asyncio.AbstractEventLoop:
        loop = factory()
        LOOPS.add(loop)
        loop.run_until_complete = _cancelled_as_hung(loop.run_until_complete)  # type: ignore[method-assign,assignment]
        if PHASE:  # a loop made during a test's setup gets that setup's watchdog too
            PHASE[0].watch(loop)
        return loop

    return new_loop


class Hung(Exception):
    """A phase's work, cancelled by its watchdog."""


def _cancelled_as_hung(run_until_complete: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`run_until_complete`, raising Hung where the watchdog's cancellation ended the work.

    pytest goes on from an Exception in a fixture's teardown, but not from a CancelledError: that skips the test's
    other fixture finalizers, and later tests would then reuse those fixtures (their caplog, their blockbuster).
    """

    @functools.wraps(run_until_complete)
    def run(future: Any) -> Any:
        try:
            return run_until_complete(future)
        except asyncio.CancelledError as cancelled:
            if PHASE and PHASE[0].stacks():
                raise Hung("cancelled by the watchdog, past the test's time limit") from cancelled
            raise

    return run


@pytest.hookimpl(wrapper=True)
def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Generator[None, Any, Any]:
    """Watch every loop conftest.py's hook chooses."""
    factories = yield
    if factories is None:
        return None
    for factory in factories.values():
        if factory not in WATCHED:
            WATCHED[factory] = watched(factory)
    return {name: WATCHED[factory] for name, factory in factories.items()}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "loop_step_limit(seconds): allow one loop step to take this long")
    STALLS.start()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each test its limits, and each async test body its in-loop timeout."""
    for item in items:
        marker = item.get_closest_marker("timeout")
        limit = float(marker.args[0] if marker.args else marker.kwargs["timeout"]) if marker else TEST_TIMEOUT
        item.stash[LIMIT] = limit
        step = item.get_closest_marker("loop_step_limit")
        item.stash[STEP_LIMIT] = float(step.args[0]) if step else LOOP_STEP_LIMIT
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

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.watchdogs: list[Watchdog] = []
        for loop in list(LOOPS):
            self.watch(loop)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if not loop.is_closed():
            self.watchdogs.append(Watchdog(loop, max(self.deadline - time.monotonic(), 0)))

    def stacks(self) -> str:
        return "\n".join(stack for watchdog in self.watchdogs for stack in watchdog.stacks).strip()

    def disarm(self) -> None:
        for watchdog in self.watchdogs:
            watchdog.disarm()


PHASE: list[Phase] = []  # the phase running now, if any


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


class Stalls(threading.Thread):
    """Pings every running loop from a thread: a ping the loop leaves unanswered past the limit is a stalled step.

    Unlike asyncio's debug mode this works the same on every loop, costs nothing measurable, and catches the
    culprit in the act: the report is the loop thread's stack at the moment the limit passed.
    """

    def __init__(self) -> None:
        super().__init__(name="loop-stall-monitor", daemon=True)
        self.limit = LOOP_STEP_LIMIT
        self.found: list[tuple[float, str]] = []
        self.armed = threading.Event()
        self.pinging = threading.Lock()
        self.loop_threads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()

    def watch(self, limit: float) -> None:
        self.limit, self.found = limit, []
        self.armed.set()

    def pause(self) -> None:
        """Stop pinging, once the ping in flight (if any) has its answer."""
        self.armed.clear()
        with self.pinging:
            pass

    def run(self) -> None:
        while self.armed.wait():
            with self.pinging:
                for loop in list(LOOPS):
                    if loop.is_running():
                        self.ping(loop)
            time.sleep(PING_INTERVAL)

    def ping(self, loop: asyncio.AbstractEventLoop) -> None:
        answered = threading.Event()
        sent = time.monotonic()
        try:
            loop.call_soon_threadsafe(self.answer, loop, answered)
        except RuntimeError:  # closed meanwhile
            return
        if _answered(loop, answered, self.limit * (DEBUG_SLOWDOWN if loop.get_debug() else 1)):
            return
        frame = sys._current_frames().get(self.loop_threads.get(loop, threading.main_thread().ident or 0))
        stack = "".join(traceback.format_stack(frame)[-STACK_DEPTH:]) if frame else ""
        _answered(loop, answered, float("inf"))  # how long the step really takes
        self.found.append((time.monotonic() - sent, stack))

    def answer(self, loop: asyncio.AbstractEventLoop, answered: threading.Event) -> None:
        self.loop_threads[loop] = threading.get_ident()
        answered.set()


def _answered(loop: asyncio.AbstractEventLoop, answered: threading.Event, seconds: float) -> bool:
    """Whether `loop` answered a ping (or stopped running, so will not) within `seconds`."""
    deadline = time.monotonic() + seconds
    while not answered.wait(PING_INTERVAL):
        if not loop.is_running():
            return True
        if time.monotonic() > deadline:
            return False
    return True


STALLS = Stalls()


@contextlib.contextmanager
def _watching(limit: float) -> Iterator[Phase]:
    """Watchdogs on every loop, and on loops made meanwhile, for as long as the block runs."""
    PHASE[:] = [watch := Phase(limit)]
    try:
        yield watch
    finally:
        PHASE.clear()
        watch.disarm()


def _guarded(item: pytest.Item, phase: str, limit: float) -> Generator[None, None, None]:
    """Run one phase of `item` under the watchdogs and the loop-step check."""
    STALLS.watch(item.stash[STEP_LIMIT])
    with _watching(limit) as watch:
        try:
            yield
        except BaseException:
            _fail_if_hung(item, phase, watch)
            raise
        finally:
            STALLS.pause()
    _fail_if_hung(item, phase, watch)
    if STALLS.found:
        seconds, stack = max(STALLS.found)
        pytest.fail(
            f"one step of the event loop took {seconds:.2f} s during {phase} (limit {item.stash[STEP_LIMIT]} s): "
            f"CPU work or a blocking call on the loop stalls every other request. The loop was here:\n{stack}"
            "Move the work to a thread (asyncio.to_thread), or raise the limit for this test with "
            "@pytest.mark.loop_step_limit(seconds).",
            pytrace=False,
        )


def _fail_if_hung(item: pytest.Item, phase: str, watch: Phase) -> None:
    stacks = watch.stacks()
    if stacks:
        pytest.fail(
            f"{item.name}: {phase} did not finish within {watch.limit} s (set the limit with "
            f"@pytest.mark.timeout(N)); its tasks were cancelled. Where they were waiting:\n{stacks}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    item.stash[BEFORE] = (_tasks(), _threads())
    yield from _guarded(item, "setup", item.stash[LIMIT])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # The body's own asyncio.timeout fires first, with a plain traceback; this catches a body that ignores it.
    yield from _guarded(item, "call", item.stash[LIMIT] + STOP_GRACE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield from _guarded(item, "teardown", item.stash[LIMIT])
    tasks_before, threads_before = item.stash[BEFORE]
    leaked_tasks = [
        task for task in _tasks() - tasks_before if task not in LONG_LIVED and not task.done() and _is_ours(task)
    ]
    leaked_threads = [thread for thread in _threads() - threads_before if thread not in LONG_LIVED]
    for thread in leaked_threads:  # a closed connection's thread may still be on its way out
        thread.join(THREAD_EXIT_GRACE)
    leaked_threads = [thread for thread in leaked_threads if thread.is_alive()]
    for task in leaked_tasks:
        task.cancel()
    unclosed = _unclosed_garbage(item)
    if leaked_tasks or leaked_threads or unclosed:
        names = [repr(task) for task in leaked_tasks] + [f"thread {thread.name!r}" for thread in leaked_threads]
        pytest.fail(
            f"{item.name} left these running or unclosed after its teardown (never awaited, cancelled or closed):\n  "
            + "\n  ".join(names + unclosed),
            pytrace=False,
        )


def _unclosed_garbage(item: pytest.Item) -> list[str]:
    """The warnings of what the test left unclosed (a client session, a connection, a socket) and only the garbage
    collector frees: held in a reference cycle, or by an app that was one of the test's fixture values.

    A full collection walks every object in the process (about 30 ms here, with the libraries loaded); gc.freeze()
    then sets the survivors aside, so each test's collection walks only what that test made (0.2 ms). The
    session's end unfreezes them, for pytest's last collection.
    """
    if isinstance(item, pytest.Function):
        item.funcargs.clear()  # the fixtures have ended; pytest itself lets go of their values a little later
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        gc.collect()
    gc.freeze()
    return [f"{warning.category.__name__}: {warning.message}" for warning in found]


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any]) -> Generator[None, Any, Any]:
    """Remember the tasks and threads that fixtures wider than one test start: they may outlive it."""
    if fixturedef.scope == "function":
        return (yield)
    tasks, threads = _tasks(), _threads()
    try:
        return (yield)
    finally:
        LONG_LIVED.update(_tasks() - tasks, _threads() - threads)


def _tasks() -> set[asyncio.Task[Any]]:
    return {task for loop in list(LOOPS) if not loop.is_closed() for task in asyncio.all_tasks(loop)}


def _threads() -> set[threading.Thread]:
    """Threads that would keep the process alive at exit (a loop's executor workers are told to stop; others not)."""
    return {
        thread
        for thread in threading.enumerate()
        if not thread.daemon and thread.is_alive() and not _is_executor_worker(thread)
    }


def _is_executor_worker(thread: threading.Thread) -> bool:
    target = getattr(thread, "_target", None)  # a ThreadPoolExecutor's worker, as in asyncio.to_thread
    return getattr(target, "__module__", None) == "concurrent.futures.thread"


def _is_ours(task: asyncio.Task[Any]) -> bool:
    """Whether the task runs this project's code (src or tests), or was created by it: not a library's own task
    (a closed server's connection handlers end a little later). Where a task was created is known only in asyncio's
    debug mode (--heavy), where every task records that stack: below each one lies this module's own
    run_until_complete wrapper, which does not make a task ours."""
    code = getattr(task.get_coro(), "cr_code", None)
    created_at = [
        frame.filename for frame in getattr(task, "_source_traceback", None) or [] if frame.filename != __file__
    ]
    return any(_in_project(filename) for filename in [*created_at, code.co_filename if code else ""])


def _in_project(filename: str) -> bool:
    return Path(filename).is_relative_to(PROJECT_ROOT) and ".venv" not in Path(filename).parts


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Add a hint to failures whose cause is not obvious from the message alone."""
    if call.excinfo is None:
        return
    text = str(call.excinfo.value)
    for needle, hint in HINTS.items():
        if needle in text:
            item.add_report_section(call.when, "hint", hint)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
    """Watch the session's own teardown too (it may be left to this point): the loop's shutdown must end. Before
    it, the objects _unclosed_garbage set aside go back to the collector, so what the session's fixtures leave is
    found too."""
    gc.unfreeze()
    try:
        with _watching(TEST_TIMEOUT):
            yield
    finally:
        session.config.stash[EXIT_STATUS] = int(session.exitstatus)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit even if a test leaked a thread (reported above): the run must never hang after its summary.

    First of all plugins: once the summary is out, nothing else may stand between the run and its exit.
    """
    if _threads() - {threading.main_thread()}:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.flush()
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
        os._exit(config.stash.get(EXIT_STATUS, 1))
