"""Fixtures and hooks every test shares.

Scopes: the loop and the fake upstream server live for the whole session
(they are costly and hold no per-test state); the app, its client and the
item store are built per test, so no test sees another's data. The store
fixtures come from tests/support/, one module per kind of store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from blockbuster import BlockBuster, blockbuster_ctx
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }} import errors
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.items import ItemStore
from {{ cookiecutter.package_name }}.loop import new_event_loop
from {{ cookiecutter.package_name }}.settings import Settings

from .support.clients import Client, ClientFactory
from .support.fake_upstream import fake_upstream

# The guards on every test (hangs, leaks, stalled loop), the --heavy option, and the `store` fixtures.
pytest_plugins = [
    "pytester",  # tests/test_harness.py runs pytest on planted faults
    "tests.support.harness",
    "tests.support.heavy",
    "tests.support.{{ "memory" if cookiecutter.database == "none" else cookiecutter.database }}_fixtures",
]

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def pytest_addoption(parser: pytest.Parser) -> None:
{%- if cookiecutter.event_loop == "uvloop" %}
    parser.addoption("--all-loops", action="store_true", help="run every async test on uvloop and on asyncio")
{%- else %}
    del parser  # the asyncio variant has one loop only
{%- endif %}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, LoopFactory]:
    """The loop(s) the tests run on: the service's own, and asyncio too with --all-loops."""
{%- if cookiecutter.event_loop == "uvloop" %}
    if config.getoption("--all-loops"):
        return {"uvloop": new_event_loop, "asyncio": asyncio.new_event_loop}
    return {"uvloop": new_event_loop}
{%- else %}
    return {"asyncio": new_event_loop}
{%- endif %}


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Function scope: a blocking call (sleep, file or socket I/O) on the loop, by the service or a test, raises."""
    with blockbuster_ctx(["{{ cookiecutter.package_name }}", "tests"]) as detector:
{%- if cookiecutter.database == "postgresql" %}
        # Allowed: asyncpg reads ~/.pgpass and service files while parsing a DSN (its own, tiny, unavoidable).
        for function in detector.functions.values():
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
{%- endif %}
        yield detector


@pytest.fixture(autouse=True)
def fail_on_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Function scope: a handler that crashed (a 500 the test may not check) fails the test with its traceback."""
    yield
    crashes = [
        record
        for record in caplog.get_records("call")
        if record.name.startswith(("aiohttp", errors.__name__)) and record.levelno >= logging.ERROR
    ]
    if crashes:
        report = "\n".join(logging.Formatter().format(record) for record in crashes)
        pytest.fail(f"the app failed while handling a request:\n{report}", pytrace=False)


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """Function scope: the root logger, with the handlers and level it had before the test put back after it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
async def upstream() -> AsyncIterator[TestServer]:
    """Session scope: a local stand-in for the upstream service (no internet in tests)."""
    server = TestServer(fake_upstream())
    async with server:
        yield server


@pytest.fixture
def settings(upstream: TestServer) -> Settings:
    """Function scope: settings pointing at the fake upstream.

    Its timeout stays the default (5 s), far above what an answer takes on a busy machine; tests of the timeout use
    a path that never answers.
    """
    return dataclasses.replace(Settings(), upstream_url=str(upstream.make_url("/status")))


@pytest.fixture
def app(settings: Settings, store: ItemStore) -> web.Application:
    """Function scope: a fresh app on the test's own store."""
    return create_app(settings, store=store)


@pytest.fixture
async def client(app: web.Application, aiohttp_client: AiohttpClient) -> Client:
    """Function scope: an HTTP client for `app`, closed after the test.

    It is closed before the store's teardown, as `app` comes first: fixtures end in the reverse order of their start.
    """
    return await aiohttp_client(app)


@pytest.fixture
def client_with(settings: Settings, store: ItemStore, aiohttp_client: AiohttpClient) -> ClientFactory:
    """Function scope: `await client_with(upstream_timeout=0.01)` gives a client for such an app."""

    async def build(**changes: Any) -> Client:
        return await aiohttp_client(create_app(dataclasses.replace(settings, **changes), store=store))

    return build


@pytest.fixture(scope="session")
async def shared_client(upstream: TestServer, session_store: ItemStore) -> AsyncIterator[Client]:
    """Session scope: one app for every test that only reads what no test writes (health, errors)."""
    settings = Settings(upstream_url=str(upstream.make_url("/status")))
    async with TestClient(TestServer(create_app(settings, store=session_store))) as client:
        yield client
