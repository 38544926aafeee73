"""How log lines reach stderr.

A loop iteration's lines go in one write and none is lost at a clean stop; an access line goes straight from its
fields, exactly as logging would write it; times are ISO 8601 UTC.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from {{ cookiecutter.package_name }}.batched_stream import BatchedStreamHandler
from {{ cookiecutter.package_name }}.logs import (
    ACCESS,
    ACCESS_LINE,
    AccessFields,
    AccessLogger,
    JsonFormatter,
    ServiceFormatter,
    ServiceHandler,
    TextFormatter,
    UtcTime,
    configure_logging,
    sole_handler,
)
from {{ cookiecutter.package_name }}.settings import Settings

from .support.clients import Client


class CountingStream(io.StringIO):
    """A text stream that counts its writes."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_the_lines_of_one_loop_iteration_are_written_together_before_the_next() -> None:
    stream = CountingStream()
    handler = BatchedStreamHandler(stream)

    for number in range(3):
        handler.write_line(f"line {number}")
    assert stream.writes == 0
    await asyncio.sleep(0)  # the next iteration
    handler.write_line("line 3")
    await asyncio.sleep(0)  # and the one after

    assert (stream.writes, stream.getvalue()) == (2, "line 0\nline 1\nline 2\nline 3\n")


async def test_a_line_from_another_thread_is_written_at_once_after_those_pending() -> None:
    stream = CountingStream()
    handler = BatchedStreamHandler(stream)

    handler.write_line("on the loop")
    thread = threading.Thread(target=handler.write_line, args=("from a thread",))
    thread.start()
    thread.join()

    assert (stream.writes, stream.getvalue()) == (1, "on the loop\nfrom a thread\n")


async def test_closing_the_handler_writes_the_pending_lines() -> None:
    stream = CountingStream()
    handler = BatchedStreamHandler(stream)

    handler.write_line("answered just before the stop")
    handler.close()  # what logging.shutdown does at exit

    assert stream.getvalue() == "answered just before the stop\n"


FIELDS: list[AccessFields] = [
    ("127.0.0.1", "GET", "/health?x=1", 200, 181, 0.12, "5f0c" * 8),
    (None, "POST", "/no/such\\x22path", 404, 0, 12.5, "-"),
]


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
@pytest.mark.parametrize("fields", FIELDS, ids=["health", "no-remote"])
def test_an_access_line_from_its_fields_is_the_line_logging_makes_of_its_record(
    formatter: ServiceFormatter, fields: AccessFields
) -> None:
    record = ACCESS.makeRecord(ACCESS.name, logging.INFO, "", 0, ACCESS_LINE, fields, None)

    assert formatter.access_line(fields, formatter.utc_time(record.created)) == formatter.format(record)


def test_a_json_access_line_gives_its_milliseconds_to_2_places_as_its_message_does() -> None:
    formatter = JsonFormatter()
    fields: AccessFields = ("127.0.0.1", "GET", "/health", 200, 2, 12.3456, "-")  # as measured: not yet rounded
    record = ACCESS.makeRecord(ACCESS.name, logging.INFO, "", 0, ACCESS_LINE, fields, None)

    for line in (formatter.access_line(fields, "2026-12-07T00:00:00.000Z"), formatter.format(record)):
        entry = json.loads(line)
        assert (entry["duration_ms"], entry["message"].split()[-2]) == (12.35, "12.35ms")


def test_access_lines_skip_logging_only_while_the_services_handler_alone_takes_them(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_logging(Settings())
    [handler] = root_logger.handlers
    assert sole_handler(ACCESS) is handler

    with monkeypatch.context() as patch:  # another handler, e.g. pytest's caplog or a log shipper
        patch.setattr(root_logger, "handlers", [handler, logging.NullHandler()])
        assert sole_handler(ACCESS) is None
    with monkeypatch.context() as patch:
        patch.setattr(ACCESS, "handlers", [logging.NullHandler()])
        assert sole_handler(ACCESS) is None
    with monkeypatch.context() as patch:
        patch.setattr(ACCESS, "filters", [logging.Filter("elsewhere")])
        assert sole_handler(ACCESS) is None
    with monkeypatch.context() as patch:
        patch.setattr(handler, "filters", [logging.Filter("elsewhere")])
        assert sole_handler(ACCESS) is None
    with monkeypatch.context() as patch:
        patch.setattr(ACCESS, "propagate", False)
        assert sole_handler(ACCESS) is None
    with monkeypatch.context() as patch:
        patch.setattr(handler, "level", logging.WARNING)
        assert sole_handler(ACCESS) is None
    assert sole_handler(ACCESS) is handler


def service_logging_to_a_counting_stream(root_logger: logging.Logger) -> CountingStream:
    """Configure the service's logging with its handler writing to a new CountingStream, and return that."""
    configure_logging(Settings())
    [handler] = root_logger.handlers
    assert isinstance(handler, ServiceHandler)
    stream = CountingStream()
    handler.setStream(stream)
    return stream


class Collector(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_handler_added_between_two_requests_gets_the_second_access_line(
    root_logger: logging.Logger, client: Client
) -> None:
    stream = service_logging_to_a_counting_stream(root_logger)
    await client.get("/health")  # straight to the service's handler, the only one
    collector = Collector()
    root_logger.addHandler(collector)

    await client.get("/health", headers={"X-Request-ID": "probe-collected"})

    assert [record.getMessage().split()[-1] for record in collector.records] == ["probe-collected"]
    assert stream.getvalue().count(f"INFO {ACCESS.name}: ") == 2  # the first line, and the second as a record


async def test_the_access_lines_of_each_connection_name_its_own_peer(
    root_logger: logging.Logger, client: Client
) -> None:
    """The peer found at a connection's first answer is that connection's alone, not the next one's."""
    stream = service_logging_to_a_counting_stream(root_logger)
    other_peer = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))  # all of 127.0.0.0/8 is this machine's

    async with aiohttp.ClientSession(connector=other_peer) as elsewhere:
        for _ in range(2):  # in turn, each connection kept open
            await client.get("/health")
            async with elsewhere.get(client.make_url("/health")) as answer:
                await answer.read()

    assert [line.split()[3] for line in stream.getvalue().splitlines()] == 2 * ["127.0.0.1", "127.0.0.2"]


async def test_an_access_line_made_as_its_batch_is_written_keeps_its_place_among_the_other_lines(
    root_logger: logging.Logger,
) -> None:
    """The service's handler makes an access line only when the line's loop iteration is written, in its place."""
    stream = service_logging_to_a_counting_stream(root_logger)
    answer = web.Response(text="ok", headers={"X-Request-ID": "probe-in-between"})
    elsewhere = logging.getLogger("elsewhere")

    elsewhere.warning("before")
    AccessLogger(ACCESS, "").log(make_mocked_request("GET", "/health"), answer, 0.001)
    elsewhere.warning("after")
    await asyncio.sleep(0)  # the next iteration

    lines = stream.getvalue().splitlines()
    assert [line.split()[-1] for line in lines] == ["before", "probe-in-between", "after"]
    assert stream.writes == 1


def test_log_times_are_iso_8601_utc_to_the_millisecond() -> None:
    utc_time = UtcTime()
    times = [1765000000.0, 1765000000.9995, 1765000001.0004, 1765000001.0004, 1765000001.0016, 1800000000.25]

    written = [utc_time(created) for created in times]  # in turn: each after the one its cache holds

    expected = [datetime.fromtimestamp(int(created * 1000) / 1000, UTC) for created in times]
    assert written == [time.isoformat(timespec="milliseconds").replace("+00:00", "Z") for time in expected]
