"""Logging set up in one place: readable text, or JSON lines for collectors; the access log and request ids."""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from dataclasses import dataclass
from time import time as clock
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from multidict import istr

from .batched_stream import BatchedStreamHandler
from .settings import Settings

SERVER_LOGGERS = ("aiohttp.server", "gunicorn.error")  # where aiohttp reports a request it could not handle
ACCESS = logging.getLogger("{{ cookiecutter.package_name }}.access")
ACCESS_LINE = '%s "%s %s" %s %s %.2fms %s'  # text: remote "method path" status bytes duration request-id
ACCESS_FIELDS = ("remote", "method", "path", "status", "bytes", "duration_ms", "request_id")  # JSON: the same
REQUEST_ID_HEADER = istr("X-Request-ID")  # as aiohttp's own header names: found without lower-casing it each time
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")  # a client's id is kept only if it looks like this


class UtcTime:
    """ISO 8601 UTC times to the millisecond (`2026-12-05T05:46:30.673Z`), each millisecond formatted once."""

    def __init__(self) -> None:
        self.last = (-1, "")

    def __call__(self, created: float) -> str:
        millisecond = int(created * 1000)
        cached, text = self.last
        if millisecond != cached:  # under load, many lines share a millisecond
            second, rest = divmod(millisecond, 1000)
            text = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(second))}.{rest:03d}Z"
            self.last = millisecond, text  # one assignment: another thread sees the old pair or the new, never a mix
        return text


AccessFields = tuple[str | None, str, str, int, int, float, str]  # ACCESS_FIELDS' values


class ServiceFormatter(logging.Formatter):
    """The service's formats: each can also write an access line straight from its fields (see AccessLogger)."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.utc_time = UtcTime()

    def access_line(self, fields: AccessFields, stamp: str) -> str:
        """The line `format` makes of an access record with these fields whose time is written `stamp`."""
        raise NotImplementedError


class TextFormatter(ServiceFormatter):
    """`<time> <level> <logger>: <message>`, the time in ISO 8601 UTC."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.utc_time(record.created)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.stack_info:  # logging's own way, which appends them
            return super().format(record)
        # The line the format string gives, in a third of the time.
        return f"{self.utc_time(record.created)} {record.levelname} {record.name}: {record.getMessage()}"

    def access_line(self, fields: AccessFields, stamp: str) -> str:
        remote, method, path, status, size, took, request_id = fields  # ACCESS_LINE's, as an f-string: faster
        # The milliseconds always to 2 places: writing a float so costs less than writing its shortest form.
        return f'{stamp} INFO {ACCESS.name}: {remote} "{method} {path}" {status} {size} {took:.2f}ms {request_id}'


class JsonFormatter(ServiceFormatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, exception if any, access fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == ACCESS.name:
            entry.update(self.access_entry(cast(AccessFields, record.args)))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)

    def access_line(self, fields: AccessFields, stamp: str) -> str:
        message = ACCESS_LINE % fields
        entry = {"time": stamp, "level": "INFO", "logger": ACCESS.name, "message": message}
        return json.dumps(entry | self.access_entry(fields))

    @staticmethod
    def access_entry(fields: AccessFields) -> dict[str, Any]:
        """ACCESS_FIELDS by name, the milliseconds to 2 places as the message writes them."""
        entry: dict[str, Any] = dict(zip(ACCESS_FIELDS, fields, strict=True))
        entry["duration_ms"] = round(fields[5], 2)
        return entry


class ClientFaults(logging.Filter):
    """Log a request aiohttp could not parse as one DEBUG line saying why: the client's fault, not an ERROR.

    A server's fault keeps its ERROR and its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if not isinstance(fault, HttpProcessingError):
            return True
        why = fault.message.partition("\n")[0].rstrip(":")  # its first line; the rest draws a caret under the byte
        record.msg, record.args = "%s: %s", (record.getMessage(), why)
        record.levelno, record.levelname, record.exc_info, record.exc_text = logging.DEBUG, "DEBUG", None, None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


CLIENT_FAULTS = ClientFaults()


def configure_logging(settings: Settings) -> None:
    """Send every record to stderr in the configured format, an iteration's lines at once; a client's fault to DEBUG."""
    handler = ServiceHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    for name in SERVER_LOGGERS:
        logging.getLogger(name).addFilter(CLIENT_FAULTS)


class AccessLogger(AbstractAccessLogger):
    """One INFO line per answered request, on the `{{ cookiecutter.package_name }}.access` logger.

    aiohttp makes one for each connection, so the connection's peer is found once, at its first answer.
    """

    __slots__ = ("remote",)

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self.remote: str | None = None  # kept from when the connection was made, so still there once it closed

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if self.remote is None:  # the first answer, or a connection whose peer is not known
            self.remote = request.remote
        batch = ITERATION
        if batch.handler is None or batch.handler.batches != batch.number:  # the first line of a loop iteration
            batch.handler = sole_handler(self.logger)
            if batch.handler is not None:
                batch.number, batch.stamp = batch.handler.batches, batch.handler.formatter.utc_time(clock())
        if batch.handler is not None:  # made a line with the rest of its batch, as they are written
            batch.handler.write_line((batch.stamp, self.remote, request, response, time))
        else:  # What `info` does, less its walk up the stack for the caller's line, which no access line needs.
            fields = access_fields(self.remote, request, response, time)
            self.logger.handle(self.logger.makeRecord(self.logger.name, logging.INFO, "", 0, ACCESS_LINE, fields, None))


AccessEntry = tuple[str, str | None, web.BaseRequest, web.StreamResponse, float]  # stamp, remote, request, answer, time


def access_fields(
    remote: str | None, request: web.BaseRequest, response: web.StreamResponse, time: float
) -> AccessFields:
    """ACCESS_FIELDS' values for `request` from `remote`, answered with `response` in `time` seconds."""
    path = request.raw_path
    return (
        remote,
        request.method,
        escaped(path) if '"' in path or "\\" in path else path,  # the test here spares most lines a call
        response.status,
        response.body_length,
        time * 1000,  # milliseconds: each format writes them to 2 places
        response.headers.get(REQUEST_ID_HEADER, "-"),  # none on aiohttp's own answer to a malformed request
    )


@dataclass(slots=True)
class Iteration:
    """What the access lines of one loop iteration (one batch of the handler's) share, found for the first.

    The handler they go to straight (sole_handler), and their time: a line's stamp is when the first access line of
    its iteration was logged, at most that iteration's length earlier than its own, and is formatted once.
    """

    handler: ServiceHandler | None = None
    number: int = -1  # the handler's batch this was found for
    stamp: str = ""


ITERATION = Iteration()


class ServiceHandler(BatchedStreamHandler):
    """The handler configure_logging installs: batched writes, in one of the service's formats.

    An access line comes to it as an AccessEntry and is made when its batch is written: the lines of a batch made
    in one loop cost less than each made in the middle of its request.
    """

    formatter: ServiceFormatter

    def lines_of(self, entries: list[str | AccessEntry]) -> list[str]:
        access_line = self.formatter.access_line
        lines = []
        for entry in entries:
            if isinstance(entry, str):
                lines.append(entry)
            else:
                stamp, remote, request, response, time = entry
                lines.append(access_line(access_fields(remote, request, response, time), stamp))
        return lines


def sole_handler(logger: logging.Logger) -> ServiceHandler | None:
    """The service's handler if it alone takes `logger`'s INFO records, unfiltered, else None.

    Then an access line can go to it as text: making and handling a LogRecord costs more than the rest of a
    `/health` request. Checked once per loop iteration, so a handler or filter added at any time (pytest's caplog,
    a user's log shipper) gets every record from the next iteration on.
    """
    node = logger
    while node.parent is not None:  # up to the root, every logger on the way without handlers or filters of its own
        if node.handlers or node.filters or node.disabled or not node.propagate:
            return None
        node = node.parent
    if node.filters or node.disabled or len(node.handlers) != 1 or not logger.isEnabledFor(logging.INFO):
        return None
    [handler] = node.handlers
    if not isinstance(handler, ServiceHandler) or handler.filters or handler.level > logging.INFO:
        return None
    return handler


def escaped(text: str) -> str:
    """`text` with `"` and `\\` written as `\\x22` and `\\x5c`, as nginx does, so a client cannot forge a field."""
    return text.replace("\\", "\\x5c").replace('"', "\\x22")


def access_log(settings: Settings) -> dict[str, Any]:
    """The server's access log arguments, for `web.Application(handler_args=...)`.

    This module's logger, or none if ACCESS_LOG is off (gunicorn's own
    `--access-logfile` then applies).
    """
    return {"access_log": ACCESS, "access_log_class": AccessLogger} if settings.access_log else {}


def request_id(request: web.BaseRequest) -> str:
    """The client's X-Request-ID if it looks sane, else a new random one (32 hex digits)."""
    sent = request.headers.get(REQUEST_ID_HEADER)
    if sent is not None and SANE_REQUEST_ID.fullmatch(sent):
        return sent
    # Not a secret, so no system call for it: Python's generator, which it seeds afresh in each forked worker.
    return random.getrandbits(128).to_bytes(16).hex()  # twice as fast as formatting the number with :032x
