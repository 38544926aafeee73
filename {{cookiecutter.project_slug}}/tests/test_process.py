"""The real server process: starts, logs its loop, refuses bad settings, and stops cleanly under load.

These tests run `python -m {{ cookiecutter.package_name }}` exactly as a user or a container
does, then send SIGTERM while requests are in flight.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import aiohttp
import pytest

from .support.service_process import Service, launch, lines_said, running_service, wait_until_healthy

pytestmark = [
    pytest.mark.heavy,  # each test starts a Python process: seconds, so `--heavy` only
    pytest.mark.timeout(60),  # a start-up alone may take up to START_TIMEOUT (15 s) on a busy runner
    # Stopping relies on SIGTERM, which Windows cannot send: there these tests do not apply.
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals"),
]

LOAD = 300  # POSTs sent while the service is told to stop
WAVE = 50  # POSTs started per loop step: starting 300 tasks in one step would stall the test's own loop
CONNECTIONS = 20
LEAKS = ("Task was destroyed", "Unclosed", "was never awaited", "Traceback")


async def create(session: aiohttp.ClientSession, url: str, n: int) -> tuple[int, str] | None:
    """POST one item; its (id, name) when acknowledged with 201, None when refused or cut off."""
    name = f"load {n}"
    try:
        async with session.post(f"{url}/items", json={"name": name}) as response:
            return ((await response.json())["id"], name) if response.status == 201 else None
    except aiohttp.ClientError:
        return None


async def start_load(session: aiohttp.ClientSession, url: str) -> list[asyncio.Task[tuple[int, str] | None]]:
    """Start LOAD creates, WAVE per loop step; they go out CONNECTIONS at a time."""
    requests = []
    for n in range(LOAD):
        requests.append(asyncio.create_task(create(session, url, n)))
        if len(requests) % WAVE == 0:
            await asyncio.sleep(0)
    return requests


async def answers(requests: list[asyncio.Task[tuple[int, str] | None]], count: int) -> None:
    """Return once `count` of the requests have been answered."""
    for answered, request in enumerate(asyncio.as_completed(requests), start=1):
        await request
        if answered == count:
            return


async def test_sigterm_mid_load_loses_no_acknowledged_write(unused_tcp_port: int, service_env: dict[str, str]) -> None:
    async with running_service(unused_tcp_port, service_env) as service:
        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector) as session:
            requests = await start_load(session, service.url)
            await answers(requests, count=LOAD // 5)  # stop mid-load: some answered, many in flight
            started = time.monotonic()
            stderr = await service.stop()
            stopped_in = time.monotonic() - started
            acknowledged = [result for result in await asyncio.gather(*requests) if result is not None]

    assert service.process.returncode == 0, stderr
    assert not [leak for leak in LEAKS if leak in stderr], stderr
    assert stopped_in < 10
    assert acknowledged, "no request was answered before the shutdown"
{%- if cookiecutter.database != "none" %}

    async with running_service(unused_tcp_port, service_env) as restarted, aiohttp.ClientSession() as session:
        for item_id, name in acknowledged:
            async with session.get(f"{restarted.url}/items/{item_id}") as response:
                assert (response.status, (await response.json())["name"]) == (200, name)
        await restarted.stop()
{%- endif %}


async def test_startup_line_names_the_loop(unused_tcp_port: int, service_env: dict[str, str]) -> None:
    async with running_service(unused_tcp_port, service_env) as service:
        stderr = await service.stop()

    [line] = [line for line in stderr.splitlines() if "serving on" in line]
    assert f"serving on http://127.0.0.1:{unused_tcp_port}" in line
{%- if cookiecutter.event_loop == "uvloop" %}
    assert "(loop: uvloop.Loop)" in line
{%- else %}
    assert "(loop: asyncio." in line
{%- endif %}


async def test_a_port_already_taken_stops_it_with_one_line(unused_tcp_port: int, service_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", unused_tcp_port))
        taken.listen()
        process = await launch({"HOST": "127.0.0.1", "PORT": str(unused_tcp_port), **service_env})
        async with asyncio.timeout(15):
            _, stderr = await process.communicate()

    lines = lines_said(stderr)
    assert process.returncode == 1
    assert len(lines) == 1, lines
    assert "cannot start:" in lines[0]
    assert str(unused_tcp_port) in lines[0]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be a number from 1 to 65535, got 'eighty'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of text, json, got 'xml'"),
{%- if cookiecutter.database == "sqlite" %}
        ({"DATABASE_URL": "mysql://db/app"}, "cannot start: DATABASE_URL must look like sqlite:///"),
        ({"DATABASE_URL": "sqlite:////proc/no/such/dir/app.db"}, "cannot start: sqlite:"),
{%- elif cookiecutter.database == "postgresql" %}
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"}, "cannot start: postgresql:"),
{%- endif %}
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
async def test_bad_configuration_stops_with_one_line(env: dict[str, str], message: str) -> None:
    process = await launch(env)
    async with asyncio.timeout(15):
        _, stderr = await process.communicate()

    lines = lines_said(stderr)
    assert process.returncode == 1
    assert len(lines) == 1, lines
    assert message in lines[0]


LOW_OPEN_FILES = 256  # macOS's default soft limit, and some containers'
IDLE_CLIENTS = 300


@pytest.mark.skipif(sys.platform != "linux", reason="needs a hard limit on open files above the soft one, as Linux has")
async def test_hundreds_of_idle_connections_under_a_low_open_files_limit_leave_health_answering(
    unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    """Started with a soft limit of 256 open files, it raises it: 300 connections that never send a request do not
    lock out the next client."""
    env = {"HOST": "127.0.0.1", "PORT": str(unused_tcp_port), **service_env}
    process = await launch(env, open_files=LOW_OPEN_FILES)
    service = Service(process, f"http://127.0.0.1:{unused_tcp_port}")
    idle: list[asyncio.StreamWriter] = []
    try:
        await wait_until_healthy(service)
        for _ in range(IDLE_CLIENTS):
            idle.append((await asyncio.open_connection("127.0.0.1", unused_tcp_port))[1])
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"{service.url}/health") as response,
        ):
            assert response.status == 200
    finally:
        for writer in idle:
            writer.close()
        stderr = await service.stop()
    assert "Traceback" not in stderr
