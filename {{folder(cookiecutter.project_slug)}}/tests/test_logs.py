"""The request id that ties a log line to an answer and an upstream call; what a failure writes to the log.

The lines a real process writes (access lines, start and stop) are in test_process.py.
"""

from __future__ import annotations

import logging
import re

import pytest
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }}.logs import CLIENT_FAULTS

from .support.clients import Client, ClientFactory

NEW_ID = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("path", ["/health", "/no/such/path", "/items/not-a-number"])
async def test_every_answer_carries_a_new_request_id(shared_client: Client, path: str) -> None:
    first = await shared_client.get(path)
    second = await shared_client.get(path)

    assert NEW_ID.fullmatch(first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


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


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [("/error", 502, "upstream answered HTTP 503"), ("/slow", 504, "upstream did not answer in time")],
)
async def test_an_upstream_failure_is_one_warning_without_a_traceback(
    client_with: ClientFactory,
    upstream: TestServer,
    caplog: pytest.LogCaptureFixture,
    path: str,
    status: int,
    said: str,
) -> None:
    client = await client_with(upstream_url=str(upstream.make_url(path)), upstream_timeout=0.05)

    response = await client.get("/upstream")

    assert response.status == status
    [record] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert (record.levelname, record.getMessage(), record.exc_info) == ("WARNING", f"GET /upstream: {said}", None)


def test_a_malformed_request_is_one_debug_line_and_a_server_fault_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests.server")  # configure_logging puts the filter on aiohttp's and gunicorn's loggers
    log.addFilter(CLIENT_FAULTS)
    caplog.set_level(logging.DEBUG, log.name)
    for fault in [BadHttpMessage("Invalid character in Content-Length:\n\n  b'abc'\n   ^"), ValueError("a bug")]:
        try:
            raise fault
        except Exception:
            log.exception("Error handling request from %s", "127.0.0.1")

    client_fault, server_fault = caplog.records
    assert (client_fault.levelname, client_fault.getMessage(), client_fault.exc_info) == (
        "DEBUG",
        "Error handling request from 127.0.0.1: Invalid character in Content-Length",
        None,
    )
    assert server_fault.levelname == "ERROR"
    assert server_fault.exc_info is not None
