"""The request id that ties a log line to an answer and an upstream call; what a failure writes to the log.

The lines a real process writes (access lines, start and stop) are in test_process.py.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
from collections.abc import Iterator

import pytest
from aiohttp import WSCloseCode
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }} import events
from {{ cookiecutter.package_name }}.events import Hub
from {{ cookiecutter.package_name }}.items import ItemStore, StoreUnavailable
from {{ cookiecutter.package_name }}.logs import ACCESS, CLIENT_FAULTS, SERVER_LOGGERS

from .support.clients import Client, ClientFactory
from .support.conditions import until
from .support.fake_upstream import SEEN_REQUEST_IDS
from .support.subscribers import RecordingSubscriber, StalledSubscriber

NEW_ID = re.compile(r"[0-9a-f]{32}")


class BrokenSubscriber(RecordingSubscriber):
    """Sending to it fails with what no one expects: a bug."""

    async def send_str(self, data: str) -> None:
        raise RuntimeError("a bug in sending")


@pytest.fixture
def server_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Function scope: caplog, with aiohttp's server logger at DEBUG and filtered as configure_logging does."""
    caplog.set_level(logging.DEBUG, SERVER_LOGGERS[0])
    server_logger = logging.getLogger(SERVER_LOGGERS[0])
    added = CLIENT_FAULTS not in server_logger.filters
    server_logger.addFilter(CLIENT_FAULTS)
    yield caplog
    if added:
        server_logger.removeFilter(CLIENT_FAULTS)


async def send_raw(client: Client, request: bytes) -> bytes:
    """`request` sent as it is, as no client library would; the answer, once whole."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def send_malformed_request(client: Client) -> bytes:
    """A request aiohttp refuses before any route is chosen; its answer, once whole."""
    return await send_raw(client, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")


def faults(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, bool]]:
    """(level, message, has a traceback) of each WARNING or worse."""
    return [
        (record.levelname, record.getMessage(), record.exc_info is not None)
        for record in caplog.records
        if record.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("HEAD", "/health"),
        ("GET", "/no/such/path"),
        ("PUT", "/health"),
        ("GET", "/items/not-a-number"),
        ("GET", "/events"),
    ],
)
async def test_every_answer_carries_a_new_request_id(shared_client: Client, method: str, path: str) -> None:
    first = await shared_client.request(method, path)
    second = await shared_client.request(method, path)

    assert NEW_ID.fullmatch(first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_a_websocket_handshake_carries_the_request_id(client: Client) -> None:
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    key = {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "X-Request-ID": "probe-ws"}

    async with client.get("/events", headers=handshake | key) as response:
        assert (response.status, response.headers["X-Request-ID"]) == (101, "probe-ws")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("4f1c-77:web/a=b+c.d_e", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("two words", False),
        ("caf\u00e9", False),
        ("", False),
    ],
    ids=["safe-characters", "128-long", "too-long", "space", "non-ascii", "empty"],
)
async def test_a_clients_request_id_is_kept_if_sane_and_goes_upstream(
    client_with: ClientFactory, upstream: TestServer, sent: str, kept: bool
) -> None:
    client = await client_with(upstream_url=str(upstream.make_url("/request-id")))

    response = await client.get("/upstream", headers={"X-Request-ID": sent})

    answered = response.headers["X-Request-ID"]
    assert (await response.json())["upstream"]["request_id"] == answered
    assert answered == sent if kept else NEW_ID.fullmatch(answered)


async def test_an_upstream_failure_is_answered_under_the_request_id_that_went_upstream(
    client_with: ClientFactory, upstream: TestServer
) -> None:
    client = await client_with(upstream_url=str(upstream.make_url("/error")))

    response = await client.get("/upstream")

    assert response.status == 502
    assert upstream.app[SEEN_REQUEST_IDS][-1] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("path", "upstream_timeout", "status", "said"),
    [
        ("/error", 5.0, 502, "upstream answered HTTP 503"),  # answers at once: far within the timeout
        ("/slow", 0.05, 504, "upstream did not answer in time"),  # never answers
    ],
)
async def test_an_upstream_failure_is_one_warning_without_a_traceback(
    client_with: ClientFactory,
    upstream: TestServer,
    caplog: pytest.LogCaptureFixture,
    path: str,
    upstream_timeout: float,
    status: int,
    said: str,
) -> None:
    client = await client_with(upstream_url=str(upstream.make_url(path)), upstream_timeout=upstream_timeout)

    response = await client.get("/upstream")

    assert response.status == status
    [record] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert (record.levelname, record.getMessage(), record.exc_info) == ("WARNING", f"GET /upstream: {said}", None)


async def test_a_malformed_request_is_its_400_and_one_debug_line_saying_why(
    client: Client, server_logs: pytest.LogCaptureFixture
) -> None:
    answer = await send_malformed_request(client)

    assert answer.split(b" ", 2)[1] == b"400"
    [record] = [record for record in server_logs.records if record.name == SERVER_LOGGERS[0]]
    assert (record.levelname, record.getMessage(), record.exc_info) == (
        "DEBUG",
        "Error handling request from 127.0.0.1: Invalid character in Content-Length",
        None,
    )


@pytest.mark.parametrize("path", ['/no/such"404"-"forged', "/no/such\\x22path"], ids=["quotes", "backslash"])
async def test_an_access_line_shows_the_path_sent_without_letting_it_forge_a_field(
    client: Client, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.INFO, ACCESS.name)

    await send_raw(client, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())

    [line] = [record.getMessage() for record in caplog.records if record.name == ACCESS.name]
    _, logged, rest = line.split('"')
    assert (logged.split(" ")[0], codecs.decode(logged, "unicode_escape")) == ("GET", f"GET {path}")
    assert rest.split()[0] == "404"


async def test_a_bug_in_a_handler_is_a_json_500_and_one_error_with_its_traceback_naming_the_request(
    client: Client, store: ItemStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bug = RuntimeError("a bug")

    async def get(*args: object) -> None:
        raise bug

    monkeypatch.setattr(store, "get", get)

    response = await client.get("/items/1", headers={"X-Request-ID": "probe-bug"})

    assert (response.status, response.headers["X-Request-ID"]) == (500, "probe-bug")
    assert (await response.json())["error"]["code"] == "internal"
    [record] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert (record.levelname, record.getMessage()) == ("ERROR", "GET /items/1 failed, request id probe-bug")
    assert record.exc_info is not None
    assert record.exc_info[1] is bug
    caplog.clear()  # the guard on every test fails one whose app logged an ERROR: here that is the point


@pytest.mark.parametrize(("method", "path"), [("GET", "/items"), ("POST", "/items"), ("DELETE", "/items/1")])
async def test_the_store_failing_on_a_request_is_one_warning_without_a_traceback(
    client: Client,
    store: ItemStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
) -> None:
    async def unavailable(*args: object) -> None:
        raise StoreUnavailable("the store went away")

    for call in ("add", "add_once", "list", "get", "delete"):
        monkeypatch.setattr(store, call, unavailable)

    response = await client.request(method, path, json={"name": "lamp"})

    assert response.status == 503
    assert faults(caplog) == [("WARNING", f"{method} {path}: the store went away", False)]


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (StoreUnavailable("gone"), ("WARNING", "reading events: gone; retrying in 1 s", False)),
        (RuntimeError("a bug"), ("ERROR", "reading events failed; retrying in 1 s", True)),
    ],
    ids=["store-unavailable", "bug"],
)
async def test_the_hub_failing_to_read_events_says_so_once_with_a_traceback_only_for_a_bug(
    store: ItemStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: Exception,
    said: tuple[str, str, bool],
) -> None:
    async def failing(*args: object) -> None:
        raise fault

    monkeypatch.setattr(store, "events_after", failing)
    hub = Hub(store)
    delivery = asyncio.create_task(hub.run())
    try:
        hub.wake()
        await until(lambda: bool(faults(caplog)))
    finally:
        hub.stop()
        await delivery

    assert faults(caplog) == [said]


@pytest.mark.parametrize(
    ("subscriber", "limit", "offered", "code", "said"),
    [
        (StalledSubscriber, ("SEND_TIMEOUT", 0.01), 1, WSCloseCode.TRY_AGAIN_LATER, ["too slow: a send took over 0 s"]),
        (StalledSubscriber, ("BUFFER", 1), 2, WSCloseCode.TRY_AGAIN_LATER, ["too slow: 1 events behind"]),
        (BrokenSubscriber, ("BUFFER", 1), 1, WSCloseCode.INTERNAL_ERROR, ["sending events failed", "server error"]),
    ],
    ids=["send-too-slow", "too-far-behind", "bug"],
)
async def test_a_subscriber_closed_as_too_slow_is_one_info_line_and_a_bug_an_error_with_its_traceback(
    store: ItemStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    subscriber: type[RecordingSubscriber],
    limit: tuple[str, float],
    offered: int,
    code: WSCloseCode,
    said: list[str],
) -> None:
    caplog.set_level(logging.INFO, events.__name__)
    monkeypatch.setattr(events, *limit)
    closed = subscriber()

    async with Hub(store).subscribe(closed, None, after=None) as subscription:
        for event_id in range(1, offered + 1):
            subscription.offer(event_id, "{}")
        assert await closed.closed() == code

    lines = [(record.levelname, record.getMessage(), record.exc_info is not None) for record in caplog.records]
    *errors, (level, message, traceback) = lines
    assert errors == [("ERROR", said[0], True)] * (len(said) - 1)
    assert (level, message, traceback) == ("INFO", f"closing an event subscriber ({said[-1]})", False)
