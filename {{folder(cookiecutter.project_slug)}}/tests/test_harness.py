"""The harness (tests/support/harness/) proven on planted faults.

Each fault must fail the test it is in, saying why and where, and let the run go on.

Each case is a small test file run by pytest in a folder of its own
(pytester, in a subprocess), with the harness and the loop this suite uses;
change the harness, and these tell you what you broke. Heavy: a run each.
"""

from __future__ import annotations

import importlib.util
import os
import re
import textwrap
from pathlib import Path

import pytest

from .support.harness import stalls

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[1]
CONFTEST = """
from {{ cookiecutter.package_name }}.loop import new_event_loop

pytest_plugins = ["tests.support.harness"]


def pytest_asyncio_loop_factories(config, item):
    return {"loop": new_event_loop}
"""
SETTINGS = """
[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "session"
filterwarnings = ["error"]
timeout_method = "thread"
"""
IN_ORDER = ("-p", "no:randomly") if importlib.util.find_spec("pytest_randomly") else ()

HANGS = {
    "a-test-past-its-timeout-marker": (
        """
        @pytest.mark.timeout(1)
        async def test_hangs():
            await asyncio.Event().wait()
        """,
        ["TimeoutError"],
    ),
    "a-fixture-setup": (
        """
        @pytest.fixture
        async def setup_hangs():
            await asyncio.Event().wait()
            yield

        @pytest.mark.timeout(1)
        async def test_hangs(setup_hangs):
            pass
        """,
        ["setup did not finish within 1.0 s", "in setup_hangs"],
    ),
    "a-fixture-teardown-that-swallows-its-cancellation": (
        """
        async def swallows_cancellation():
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    pass

        @pytest.fixture
        async def teardown_hangs():
            worker = asyncio.create_task(swallows_cancellation())
            yield
            worker.cancel()
            await worker

        @pytest.mark.timeout(1)
        async def test_hangs(teardown_hangs):
            pass
        """,
        ["teardown did not finish within 1.0 s", "in teardown_hangs"],
    ),
    "an-app-cleanup": (
        """
        async def hangs_on_cleanup(app):
            yield
            await asyncio.Event().wait()

        @pytest.mark.timeout(1)
        async def test_hangs(aiohttp_client):
            app = web.Application()
            app.cleanup_ctx.append(hangs_on_cleanup)
            await aiohttp_client(app)
        """,
        ["teardown did not finish within 1.0 s", "in hangs_on_cleanup"],
    ),
}
LEAKS = {
    "a-client-session": (
        """
        async def test_leaks():
            aiohttp.ClientSession()
        """,
        ["Unclosed client session"],
    ),
    "a-client-session-in-a-reference-cycle": (
        """
        async def test_leaks():
            holder = [aiohttp.ClientSession()]
            holder.append(holder)
        """,
        ["Unclosed client session"],
    ),
    "a-client-session-held-by-an-app-fixture": (
        """
        SESSION = web.AppKey("session", aiohttp.ClientSession)

        async def opens_a_session_it_never_closes(app):
            app[SESSION] = aiohttp.ClientSession()
            yield

        @pytest.fixture
        def leaky_app():
            app = web.Application()
            app.cleanup_ctx.append(opens_a_session_it_never_closes)
            return app

        async def test_leaks(aiohttp_client, leaky_app):
            await aiohttp_client(leaky_app)
        """,
        ["Unclosed client session"],
    ),
    "a-task": (
        """
        async def poll_forever():
            while True:
                await asyncio.sleep(3600)

        async def test_leaks():
            asyncio.create_task(poll_forever())
        """,
        ["left these running", "poll_forever"],
    ),
    "a-thread": (
        """
        async def test_leaks():
            threading.Thread(target=threading.Event().wait, name="forgotten-worker").start()
        """,
        ["thread 'forgotten-worker'"],
    ),
}
STALLS = {
    "cpu-work-in-the-test": (
        """
        async def test_stalls():
            burn(BURN)
        """,
        ["one step of the event loop took", "in test_stalls"],
    ),
    "cpu-work-in-a-handler": (
        """
        async def busy_handler(request):
            burn(BURN)
            return web.Response()

        async def test_stalls(aiohttp_client):
            app = web.Application()
            app.router.add_get("/", busy_handler)
            client = await aiohttp_client(app)
            await client.get("/")
        """,
        ["one step of the event loop took", "in busy_handler"],
    ),
    "cpu-work-in-a-background-task": (
        """
        async def background():
            burn(BURN)

        async def test_stalls():
            await asyncio.create_task(background())
        """,
        ["one step of the event loop took", "in background"],
    ),
    "a-step-that-never-ends": (
        """
        async def spins():
            while True:
                pass

        async def test_stalls():
            await asyncio.create_task(spins())
        """,
        ["one step of the event loop never ended", "in spins"],
    ),
}
# Interrupting a step takes a signal to the main thread, which Windows has none of for this.
NEEDS_A_SIGNAL = pytest.mark.skipif(stalls.INTERRUPT is None, reason="no signal to interrupt a step with")
FAULTS = {f"hang-{name}": case for name, case in HANGS.items()}
FAULTS |= {f"leak-{name}": case for name, case in LEAKS.items()}
FAULTS |= {f"stall-{name}": case for name, case in STALLS.items()}
CASES = [
    pytest.param(*case, id=name, marks=[NEEDS_A_SIGNAL] if "never-ends" in name else [])
    for name, case in FAULTS.items()
]
PRELUDE = """
import asyncio
import threading
import time

import aiohttp
import pytest
from aiohttp import web

from tests.support.harness.stalls import LOOP_STEP_LIMIT, MAIN_CLOCK, WALL_TIME_FACTOR

BURN = 2 * LOOP_STEP_LIMIT * (1 if MAIN_CLOCK else WALL_TIME_FACTOR)  # twice what a step may cost, as measured here


def burn(seconds):
    '''Spend `seconds` of this thread's CPU time, however busy the machine.'''
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass
"""
AFTER = """

async def test_after_the_fault_the_run_goes_on():
    pass
"""


@pytest.fixture
def harnessed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """Function scope: a folder whose pytest runs use this suite's harness and loop."""
    # tests.support.harness (and the package, should it not be installed) for pytester's subprocess
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest(CONFTEST)
    pytester.makepyprojecttoml(SETTINGS)
    return pytester


def run(pytester: pytest.Pytester, body: str, *options: str) -> tuple[dict[str, set[str]], str]:
    """Run `body` as a test file, with pytest's `options`; each test's outcomes, and the whole output.

    The outcomes are PASSED, FAILED and ERROR; a test can have two, as it can pass and then error in its teardown.
    """
    pytester.makepyfile(test_fault=PRELUDE + textwrap.dedent(body) + AFTER)
    result = pytester.runpytest_subprocess(*IN_ORDER, "-p", "no:cacheprovider", "-rA", *options)
    outcomes: dict[str, set[str]] = {}
    for outcome, name in re.findall(r"^(PASSED|FAILED|ERROR) test_fault\.py::(\w+)", result.stdout.str(), re.MULTILINE):
        outcomes.setdefault(name, set()).add(outcome)
    return outcomes, result.stdout.str()


@pytest.mark.parametrize(("body", "said"), CASES)
def test_a_fault_fails_its_own_test_saying_why_and_where(
    harnessed: pytest.Pytester, body: str, said: list[str]
) -> None:
    outcomes, output = run(harnessed, body)

    # (A task that swallows its cancellation also stalls the loop's shutdown: reported in the last test's teardown.)
    assert "PASSED" in outcomes.pop("test_after_the_fault_the_run_goes_on"), output
    [(_, fault)] = outcomes.items()
    assert fault & {"FAILED", "ERROR"}, output
    assert [text for text in said if text not in output] == [], output


def test_a_loop_step_limit_marker_allows_a_longer_step(harnessed: pytest.Pytester) -> None:
    body = """
        @pytest.mark.loop_step_limit(5)
        async def test_may_stall():
            burn(BURN)
    """
    outcomes, output = run(harnessed, body)

    assert outcomes == {"test_may_stall": {"PASSED"}, "test_after_the_fault_the_run_goes_on": {"PASSED"}}, output


def test_a_stall_in_debug_mode_is_reported_against_the_limit_applied_there(harnessed: pytest.Pytester) -> None:
    """Debug mode (--heavy) makes every step costlier, so its limit is DEBUG_SLOWDOWN times the test's: say that one."""
    body = """
        @pytest.mark.loop_step_limit(0.1)
        async def test_stalls():
            burn(2 * 0.3 * (1 if MAIN_CLOCK else WALL_TIME_FACTOR))
    """
    outcomes, output = run(harnessed, body, "--asyncio-debug")

    assert outcomes["test_stalls"] == {"FAILED"}, output
    applied = 0.1 * stalls.DEBUG_SLOWDOWN * (1 if stalls.MAIN_CLOCK else stalls.WALL_TIME_FACTOR)
    assert f"(limit {round(applied, 3)} s)" in output, output


def test_a_hung_app_cleanup_leaves_the_next_test_its_own_fixtures(harnessed: pytest.Pytester) -> None:
    body = """
        async def hangs_on_cleanup(app):
            yield
            await asyncio.Event().wait()

        @pytest.fixture
        def fresh():  # function scope: a new list for each test
            return []

        @pytest.mark.timeout(1)
        async def test_hangs(aiohttp_client, fresh):
            fresh.append("used")
            app = web.Application()
            app.cleanup_ctx.append(hangs_on_cleanup)
            await aiohttp_client(app)

        async def test_gets_a_new_list(fresh):
            assert fresh == []
    """
    outcomes, output = run(harnessed, body)

    assert "ERROR" in outcomes["test_hangs"], output
    assert outcomes["test_gets_a_new_list"] == {"PASSED"}, output


def test_an_app_shared_across_tests_gets_a_hint(harnessed: pytest.Pytester) -> None:
    body = """
        STARTED = web.AppKey("started", bool)

        async def remember_the_start(app):  # as the service's app does: its state is set at each start
            app[STARTED] = True
            yield

        @pytest.fixture(scope="session")
        async def app():
            app = web.Application()
            app.cleanup_ctx.append(remember_the_start)
            return app

        async def test_first(aiohttp_client, app):
            await aiohttp_client(app)

        async def test_second(aiohttp_client, app):
            await aiohttp_client(app)
    """
    outcomes, output = run(harnessed, body)

    assert outcomes["test_second"] == {"FAILED"}, output
    assert "Share a started client instead" in output
