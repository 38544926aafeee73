"""Leaks: what a test leaves behind fails that test, by name, and never keeps pytest from exiting.

A task running the project's code (or, in asyncio's debug mode, one the
project's code started), or a thread, that outlives the test; an unclosed
resource that only the garbage collector frees after the teardown (a
ResourceWarning). Tasks and threads that fixtures wider than one test start
may outlive it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from .loops import all_tasks

# How long a thread gets to end after the test that started it: a closed connection's thread is on its way out,
# and on a busy machine may wait a while for its turn; only a thread that really leaks costs this wait.
THREAD_EXIT_GRACE = 5.0

BEFORE = pytest.StashKey[tuple[set[asyncio.Task[Any]], set[threading.Thread]]]()
LONG_LIVED = pytest.StashKey[set[object]]()  # tasks and threads started by fixtures wider than one test
EXIT_STATUS = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LONG_LIVED] = set()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Remember the tasks and threads that fixtures wider than one test start: they may outlive it."""
    if fixturedef.scope == "function":
        return (yield)
    config = request.config
    tasks, threads = all_tasks(config), _threads()
    try:
        return (yield)
    finally:
        config.stash[LONG_LIVED].update(all_tasks(config) - tasks, _threads() - threads)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[BEFORE] = (all_tasks(item.config), _threads())


@pytest.hookimpl(wrapper=True, tryfirst=True)  # after the other guards' teardown: the test's fixtures have ended
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield
    long_lived = item.config.stash[LONG_LIVED]
    tasks_before, threads_before = item.stash[BEFORE]
    leaked_tasks = [
        task
        for task in all_tasks(item.config) - tasks_before
        if task not in long_lived and not task.done() and _is_ours(task, item.config.rootpath)
    ]
    leaked_threads = [thread for thread in _threads() - threads_before if thread not in long_lived]
    for thread in leaked_threads:
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
    """The warnings of what the test left unclosed and only the garbage collector frees.

    Such a thing (a client session, a connection, a socket) is held in a reference cycle, or by an app that was one
    of the test's fixture values.

    A full collection walks every object in the process; gc.freeze() then sets the survivors aside, so each
    test's collection walks only what that test made. The session's end unfreezes them, for pytest's last
    collection.
    """
    if isinstance(item, pytest.Function):
        item.funcargs.clear()  # the fixtures have ended; pytest itself lets go of their values a little later
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        gc.collect()
    gc.freeze()
    return [f"{warning.category.__name__}: {warning.message}" for warning in found]


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


def _is_ours(task: asyncio.Task[Any], root: Path) -> bool:
    """Whether the task runs this project's code (under `root`: src or tests), or was created by it.

    A library's own tasks are not (a closed server's connection handlers end a little later). Where a task was
    created is known only in asyncio's debug mode (--heavy): below each such stack lies the harness's own
    run_until_complete wrapper, which does not make a task ours.
    """
    code = getattr(task.get_coro(), "cr_code", None)
    harness = Path(__file__).parent
    created_at = [
        frame.filename
        for frame in getattr(task, "_source_traceback", None) or []
        if not Path(frame.filename).is_relative_to(harness)
    ]
    return any(_in_project(filename, root) for filename in [*created_at, code.co_filename if code else ""])


def _in_project(filename: str, root: Path) -> bool:
    return Path(filename).is_relative_to(root) and ".venv" not in Path(filename).parts


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """Give the objects _unclosed_garbage set aside back to the collector, and remember the exit status.

    The collector then finds what the session's fixtures leave too; the status is for pytest_unconfigure's exit.
    """
    gc.unfreeze()
    try:
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
