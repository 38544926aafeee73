"""The real server process: starts, logs its loop, refuses bad settings, and stops cleanly under load; its log.

These tests run `python -m {{ cookiecutter.package_name }}` exactly as a user or a container
does, then send SIGTERM while requests are in flight; and read what it wrote to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import signal
import socket
import sys
import time
from collections import Counter

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }}.settings import Number, Settings

{% if cookiecutter.database != "none" -%}
from .support.gunicorn_process import GUNICORN, LISTENING
{% endif -%}
from .support.service_process import Service, launch, lines_said, running_service, wait_until_healthy

pytestmark = [
    pytest.mark.heavy,  # each test starts a Python process: slow, so `--heavy` only
    pytest.mark.timeout(60),  # a start-up alone may take up to START_TIMEOUT (15 s) on a busy runner
    # Stopping relies on SIGTERM, which Windows cannot send: there these tests do not apply.
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals"),
]

LOAD = 300  # POSTs sent while the service is told to stop
WAVE = 50  # POSTs started per loop step: starting 300 tasks in one step would stall the test's own loop
CONNECTIONS = 20
LEAKS = ("Task was destroyed", "Unclosed", "was never awaited", "Traceback")
NUMBER_BOUNDS = [  # each number setting's variable with its lowest and its highest value, as declared
    (field.name.upper(), rule.show(bound))
    for field in dataclasses.fields(Settings)
    if isinstance(rule := field.metadata["rule"], Number)
    for bound in (rule.low, rule.high)
]
ACCESS_LOGGER = "{{ cookiecutter.package_name }}.access"
ACCESS_LINE = re.compile(rf' INFO {re.escape(ACCESS_LOGGER)}: 127\.0\.0\.1 "(\w+) (\S+)" (\d\d\d) \d+ [\d.]+ms (\S+)$')
DROPPED = 50  # uploads cut off mid-body
MALFORMED = [  # two requests aiohttp refuses before any route is chosen, one a handler refuses
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /items HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
    b"Content-Length: 5\r\n\r\nnope!",
]


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


async def test_a_second_sigterm_during_the_shutdown_changes_nothing(
    unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    """GNU `timeout` and some process managers send SIGTERM twice: the second, mid-shutdown, is ignored.

    A request in flight holds the shutdown open (its upstream answers when the test says so); a subscriber's close
    frame says the shutdown has begun.
    """
    arrived, release = asyncio.Event(), asyncio.Event()

    async def gated(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"status": "ok"})

    async def status(session: aiohttp.ClientSession, url: str) -> int:
        async with session.get(url) as response:
            return response.status

    upstream = web.Application()
    upstream.router.add_get("/status", gated)
    async with TestServer(upstream) as gate:
        env = {**service_env, "UPSTREAM_URL": str(gate.make_url("/status")), "UPSTREAM_TIMEOUT": "600"}
        async with running_service(unused_tcp_port, env) as service, aiohttp.ClientSession() as session:
            subscriber = await session.ws_connect(f"{service.url}/events")
            in_flight = asyncio.create_task(status(session, f"{service.url}/upstream"))
            await arrived.wait()
            service.process.send_signal(signal.SIGTERM)
            closed = await subscriber.receive()  # on_shutdown closes subscribers: the shutdown is under way
            service.process.send_signal(signal.SIGTERM)
            release.set()
            answered = await in_flight
            stderr = await service.output()

    said = stderr.encode()
    assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert answered == 200
    assert service.process.returncode == 0, stderr
    assert not [leak for leak in LEAKS if leak in stderr], stderr
    stopped = [line for line in lines_said(said) if line.endswith(": stopped")]
    assert stopped == [lines_said(said)[-1]], stderr


async def test_startup_line_names_the_loop_and_how_to_stop(unused_tcp_port: int, service_env: dict[str, str]) -> None:
    async with running_service(unused_tcp_port, service_env) as service:
        stderr = await service.stop()

    [line] = [line for line in stderr.splitlines() if "serving on" in line]
    assert f"serving on http://127.0.0.1:{unused_tcp_port}" in line
{%- if cookiecutter.event_loop == "uvloop" %}
    assert "(loop: uvloop.Loop)" in line
{%- else %}
    assert "(loop: asyncio." in line
{%- endif %}
    assert line.endswith("; Ctrl-C stops")


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


async def test_a_service_is_not_taken_for_ready_on_another_servers_answer(
    unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    """Waiting for a service ignores another server's /health on its port: it waits for the service's own word."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    squatter = web.Application()
    squatter.router.add_get("/health", health)
    async with TestServer(squatter, host="127.0.0.1", port=unused_tcp_port):
        env = {**service_env, "HOST": "127.0.0.1", "PORT": str(unused_tcp_port)}
        service = Service(await launch(env), f"http://127.0.0.1:{unused_tcp_port}")
        try:
            with pytest.raises(AssertionError, match="cannot start"):
                await wait_until_healthy(service)
        finally:
            if service.process.returncode is None:
                service.process.kill()
                await service.process.wait()


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


@pytest.mark.parametrize(("name", "value"), NUMBER_BOUNDS, ids=[f"{name}={value}" for name, value in NUMBER_BOUNDS])
async def test_each_number_at_its_bounds_starts_or_is_refused_with_one_line(
    name: str, value: str, unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    """The service serves and stops cleanly with a number setting at its lowest or highest, or exits saying why."""
    port = int(value) if name == "PORT" else unused_tcp_port
    env = {**service_env, "HOST": "127.0.0.1", "PORT": str(port), name: value}
    service = Service(await launch(env), f"http://127.0.0.1:{port}")
    try:
        with contextlib.suppress(AssertionError):  # it exited before answering
            await wait_until_healthy(service)
        if service.process.returncode is None:
            stderr = await service.stop()
            assert service.process.returncode == 0, stderr
            assert not [leak for leak in LEAKS if leak in stderr], stderr
            assert lines_said(stderr.encode())[-1].endswith(": stopped"), stderr
        else:
            said = await service.output()
            assert service.process.returncode != 0
            assert len(lines_said(said.encode())) == 1, said
    finally:
        if service.process.returncode is None:
            service.process.kill()
            await service.process.wait()


LOW_OPEN_FILES = 256  # macOS's default soft limit, and some containers'
IDLE_CLIENTS = 300


@pytest.mark.skipif(sys.platform != "linux", reason="needs a hard limit on open files above the soft one, as Linux has")
async def test_hundreds_of_idle_connections_under_a_low_open_files_limit_leave_health_answering(
    unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    """Started with a soft limit of 256 open files, the service raises it.

    300 connections that never send a request then do not lock out the next client.
    """
    async with running_service(unused_tcp_port, service_env, open_files=LOW_OPEN_FILES) as service:
        idle: list[asyncio.StreamWriter] = []
        try:
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


async def send_raw(url: str, request: bytes, hang_up: bool = False) -> None:
    """Send `request` as it is, then read the answer to its end, or hang up at once."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    if not hang_up:
        await reader.read()
    writer.close()
    await writer.wait_closed()


async def test_dropped_uploads_and_malformed_requests_are_one_access_line_each(
    unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    upload = b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    async with running_service(unused_tcp_port, service_env) as service:
        await asyncio.gather(*(send_raw(service.url, upload, hang_up=True) for _ in range(DROPPED)))
        for request in MALFORMED:
            await send_raw(service.url, request)
        stderr = await service.stop()

    first, *middle, last = lines_said(stderr.encode())
    assert "serving on" in first
    assert last.endswith("INFO {{ cookiecutter.package_name }}: stopped")
    accessed = [ACCESS_LINE.search(line) for line in middle]
    assert all(accessed), middle  # no traceback, no ERROR: one access line per request, and nothing else
    # (status, has a request id) of each, less the start-up probes; 499: nginx's "client closed request"
    answers = Counter((int(line[3]), line[4] != "-") for line in accessed if line and line[2] != "/health")
    assert answers == {(499, True): DROPPED, (400, False): 2, (400, True): 1}  # aiohttp's own 400s have no id


async def test_json_access_lines_carry_the_request_fields_and_id(
    unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    async with running_service(unused_tcp_port, {**service_env, "LOG_FORMAT": "json"}) as service:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{service.url}/health?x=1", headers={"X-Request-ID": "probe-1"}) as response:
                assert response.headers["X-Request-ID"] == "probe-1"
            async with session.post(f"{service.url}/items", json={"name": "logged"}) as response:
                created_id = response.headers["X-Request-ID"]
        stderr = await service.stop()

    entries = [json.loads(line) for line in lines_said(stderr.encode())]
    access = [entry for entry in entries if entry["logger"] == "{{ cookiecutter.package_name }}.access"]
    fields = [{key: entry[key] for key in ("method", "path", "status", "remote", "request_id")} for entry in access]
    health = {"method": "GET", "path": "/health?x=1", "status": 200, "remote": "127.0.0.1", "request_id": "probe-1"}
    created = {"method": "POST", "path": "/items", "status": 201, "remote": "127.0.0.1", "request_id": created_id}
    assert fields[-2:] == [health, created]  # after the probes of the start-up
    assert access[-2]["bytes"] > len(b'{"status": "ok"}')  # the headers too
    assert all(entry["duration_ms"] >= 0 for entry in access)
    assert entries[-1]["message"] == "stopped"


async def test_access_log_off_leaves_the_start_and_stop_lines(
    unused_tcp_port: int, service_env: dict[str, str]
) -> None:
    async with running_service(unused_tcp_port, {**service_env, "ACCESS_LOG": "off"}) as service:
        async with aiohttp.ClientSession() as session, session.get(f"{service.url}/no/such/path") as response:
            assert response.status == 404
        stderr = await service.stop()

    started, stopped = [line.partition(" INFO ")[2] for line in lines_said(stderr.encode())]
    assert started.startswith(f"{{ cookiecutter.package_name }}: serving on http://127.0.0.1:{unused_tcp_port} ")
    assert stopped == "{{ cookiecutter.package_name }}: stopped"
{%- if cookiecutter.database != "none" %}


async def test_gunicorn_workers_write_the_same_access_lines(unused_tcp_port: int, service_env: dict[str, str]) -> None:
    probe = {"X-Request-ID": "probe-2"}
    # One worker, so the one that answers is all there is: a worker told to stop while still booting may hang.
    options = ("--workers", "1", "--bind", f"127.0.0.1:{unused_tcp_port}", "--no-control-socket")
    url = f"http://127.0.0.1:{unused_tcp_port}"
    gunicorn = Service(await launch(service_env, [*GUNICORN, *options]), url, announces=LISTENING)
    try:
        await wait_until_healthy(gunicorn)
        async with aiohttp.ClientSession() as session, session.get(f"{gunicorn.url}/items", headers=probe) as response:
            assert response.status == 200
        stderr = await gunicorn.stop()
    finally:
        if gunicorn.process.returncode is None:
            gunicorn.process.kill()
            await gunicorn.process.wait()

    [line] = [line for line in stderr.splitlines() if line.endswith(" probe-2")]
    assert ACCESS_LINE.search(line), line
{%- endif %}
