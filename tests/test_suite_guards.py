"""The baked suite's configuration does its job: shared async fixtures work, mistakes fail fast.

Each case writes extra test files into a freshly baked project and runs its
suite, once per event loop.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .baking import CHOICES, bake, run_suite

SHARED_FIXTURES = """
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from {package}.app import create_app
from {package}.settings import Settings
from {package}.store_memory import MemoryItemStore


@pytest.fixture(scope="session")
async def app_client() -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(Settings(), store=MemoryItemStore())))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    yield session
    await session.close()
"""

USES_SHARED_FIXTURES = """
async def test_session_client_{n}(app_client):
    assert (await app_client.get("/health")).status == 200


async def test_module_session_{n}(app_client, http_session):
    async with http_session.get(app_client.make_url("/items")) as response:
        assert response.status == 200
"""

MISTAKES = """
import asyncio
import time

from {package}.items import NewItem


async def test_forgets_to_await(store):
    store.add(NewItem(name="never stored", quantity=1))


async def test_hangs_forever():
    await asyncio.Event().wait()


async def test_handler_blocks_the_loop(client, mocker, store):
    mocker.patch.object(type(store), "list", side_effect=lambda *args: time.sleep(0.01))
    await client.get("/items")
"""

# Each case is one realistic way a test run goes wrong; the harness must fail exactly that test and go on.
HARNESS_FAULTS = """
import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import aiohttp
import aiosqlite
import pytest

from {package}.app import create_app
from {package}.settings import Settings


@pytest.mark.timeout(2)
async def test_marked_timeout_hangs():
    await asyncio.Event().wait()


@pytest.fixture
async def setup_hangs() -> AsyncIterator[None]:
    await asyncio.Event().wait()
    yield


@pytest.mark.timeout(2)
async def test_fixture_setup_hangs(setup_hangs):
    pass


async def swallows_cancellation() -> None:
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass


@pytest.fixture
async def teardown_hangs() -> AsyncIterator[None]:
    worker = asyncio.create_task(swallows_cancellation())
    yield
    worker.cancel()
    await worker


@pytest.mark.timeout(2)
async def test_fixture_teardown_hangs(teardown_hangs):
    pass


async def hangs_on_cleanup(app):
    yield
    await asyncio.Event().wait()


@pytest.fixture
def fresh():  # function scope: a new list for each test
    return []


@pytest.mark.timeout(2)
async def test_app_cleanup_hangs(fresh, aiohttp_client, tmp_path):  # `fresh` ends after aiohttp_client's hang
    fresh.append("used")
    app = create_app(Settings(database_url=f"sqlite:///{{tmp_path / 'app.db'}}"))
    app.cleanup_ctx.append(hangs_on_cleanup)
    await aiohttp_client(app)


async def test_app_cleanup_hangs_and_the_next_test_gets_new_fixtures(fresh):
    assert fresh == []


async def test_leaks_a_client_session():
    aiohttp.ClientSession()


async def test_leaks_a_client_session_in_a_cycle():  # freed by the garbage collector, not when the test returns
    holder = [aiohttp.ClientSession()]
    holder.append(holder)


SESSION = aiohttp.web.AppKey("session", aiohttp.ClientSession)


async def opens_a_session_it_never_closes(app):
    app[SESSION] = aiohttp.ClientSession()
    yield


@pytest.fixture
def leaky_app():  # as conftest.py's `app`: a fixture value lives until pytest lets go of it, after the teardown
    app = aiohttp.web.Application()
    app.cleanup_ctx.append(opens_a_session_it_never_closes)
    return app


async def test_app_leaks_a_client_session(aiohttp_client, leaky_app):
    await aiohttp_client(leaky_app)


async def test_leaks_a_database_connection(tmp_path):
    await aiosqlite.connect(str(tmp_path / "leak.db"))


async def poll_forever():
    while True:
        await asyncio.sleep(3600)


async def test_leaks_a_task():
    asyncio.create_task(poll_forever())


def compute(seconds):  # CPU work for `seconds` of wall time, however fast the machine (a hash count was not)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        hashlib.sha256(b"x").digest()


async def test_holds_the_loop_with_cpu_work():
    compute(2.5)


@pytest.mark.loop_step_limit(30)
async def test_may_hold_the_loop_when_marked():
    compute(2.5)


@pytest.fixture(scope="session")
async def app():
    return create_app(Settings())


async def test_seed_session_app_once(aiohttp_client, app):
    assert (await (await aiohttp_client(app)).get("/health")).status == 200


async def test_seed_session_app_twice(aiohttp_client, app):
    assert (await (await aiohttp_client(app)).get("/health")).status == 200


async def test_zz_runs_after_all_of_them():
    pass
"""
# test name -> what its report must say
HARNESS_REPORTS = {
    "test_marked_timeout_hangs": "TimeoutError",
    "test_fixture_setup_hangs": "setup did not finish within 2.0 s",
    "test_fixture_teardown_hangs": "teardown did not finish within 2.0 s",
    "test_app_cleanup_hangs": "teardown did not finish within 2.0 s",
    "test_app_cleanup_hangs_and_the_next_test_gets_new_fixtures": "passed",
    "test_leaks_a_client_session": "Unclosed client session",
    "test_leaks_a_client_session_in_a_cycle": "Unclosed client session",
    "test_app_leaks_a_client_session": "Unclosed client session",
    "test_leaks_a_database_connection": "_connection_worker_thread",  # its thread would keep pytest from exiting
    "test_leaks_a_task": "left these running or unclosed after its teardown",
    "test_holds_the_loop_with_cpu_work": "one step of the event loop took",
    "test_may_hold_the_loop_when_marked": "passed",
    "test_seed_session_app_once": "passed",
    "test_seed_session_app_twice": "Changing state of started or joined application",
    # Last, it also reports the loop's shutdown, which the cancellation-swallowing worker above stalls.
    "test_zz_runs_after_all_of_them": "teardown did not finish",
}
# Where the report points: the line each hang was stuck on, the culprit of the stall.
HARNESS_WHERE = {
    "test_fixture_setup_hangs": "in setup_hangs",
    "test_fixture_teardown_hangs": "in teardown_hangs",
    "test_app_cleanup_hangs": "in hangs_on_cleanup",
    "test_holds_the_loop_with_cpu_work": "test_holds_the_loop_with_cpu_work",
}


def outcomes(report: Path) -> dict[str, str]:
    """Test name -> 'passed' or the text of its failure/error."""
    found = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        problems = [f"{child.get('message', '')}\n{child.text or ''}" for child in case if child.tag != "system-out"]
        found[case.get("name", "")] = "\n".join(problems) or "passed"
    return found


@pytest.fixture(params=CHOICES["event_loop"])
def project(request: pytest.FixtureRequest, cookies) -> Path:  # type: ignore[no-untyped-def]
    """Function scope: a fresh bake (database=none) on each loop, for tests that add files to it."""
    return bake(cookies, {"event_loop": request.param, "database": "none"})


def test_seed_style_shared_fixtures_work_from_two_modules(project: Path, tmp_path: Path) -> None:
    shared = project / "tests" / "shared"
    shared.mkdir()
    (shared / "__init__.py").write_text("")
    (shared / "conftest.py").write_text(SHARED_FIXTURES.format(package="async_service"))
    for n in (1, 2):
        (shared / f"test_module_{n}.py").write_text(USES_SHARED_FIXTURES.format(n=n))

    done = run_suite(project, "tests/shared", f"--junitxml={tmp_path / 'report.xml'}")

    assert done.returncode == 0, done.stdout + done.stderr
    assert set(outcomes(tmp_path / "report.xml").values()) == {"passed"}
    assert "different loop" not in done.stdout + done.stderr


def test_mistakes_fail_fast_with_the_reason(project: Path, tmp_path: Path) -> None:
    (project / "tests" / "test_mistakes.py").write_text(MISTAKES.format(package="async_service"))

    started = time.monotonic()
    done = run_suite(project, "tests/test_mistakes.py", f"--junitxml={tmp_path / 'report.xml'}")
    elapsed = time.monotonic() - started

    assert done.returncode == 1, done.stdout + done.stderr
    results = outcomes(tmp_path / "report.xml")
    assert "was never awaited" in results["test_forgets_to_await"]
    assert "TimeoutError" in results["test_hangs_forever"]
    assert "BlockingError" in results["test_handler_blocks_the_loop"]
    assert elapsed < 40, "the hung test must end at the 10 s async-test timeout"


@pytest.mark.parametrize("event_loop", CHOICES["event_loop"])
def test_harness_fails_each_broken_test_by_name_and_finishes_the_run(
    cookies,
    event_loop: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    project = bake(cookies, {"event_loop": event_loop, "database": "sqlite"})
    (project / "tests" / "test_harness_faults.py").write_text(HARNESS_FAULTS.format(package="async_service"))

    started = time.monotonic()
    done = run_suite(
        project, "tests/test_harness_faults.py", "-p", "no:randomly", "-rA", f"--junitxml={tmp_path / 'report.xml'}"
    )
    elapsed = time.monotonic() - started

    assert done.returncode == 1, done.stdout + done.stderr
    assert "+ Timeout +" not in done.stdout + done.stderr, "pytest-timeout ended the run"
    results = outcomes(tmp_path / "report.xml")
    wrong = {
        name: results.get(name, "not run")[:300]
        for name, said in HARNESS_REPORTS.items()
        if said not in results.get(name, "")
    }
    assert wrong == {}, done.stdout
    assert {name: where for name, where in HARNESS_WHERE.items() if where not in results[name]} == {}
    assert "Share a started client instead" in done.stdout  # the hint on the seed's session-app shape
    assert elapsed < 90, f"the run took {elapsed:.0f} s"
