"""The baked suite's configuration does its job: shared async fixtures work, mistakes fail fast.

Each case writes extra test files into a freshly baked project and runs its
suite, once per event loop. The harness's own guards (hangs, leaks, stalls)
are proven by the bake's tests/test_harness.py, which every combination's
full proof runs (tests/test_matrix.py).
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
