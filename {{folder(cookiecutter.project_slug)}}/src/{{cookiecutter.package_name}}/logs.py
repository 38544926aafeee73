"""Logging set up in one place: readable text, or JSON lines for collectors; the access log and request ids."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from .keys import REQUEST_ID
from .settings import Settings

SERVER_LOGGERS = ("aiohttp.server", "gunicorn.error")  # where aiohttp reports a request it could not handle
ACCESS = logging.getLogger("{{ cookiecutter.package_name }}.access")
ACCESS_LINE = '%s "%s %s" %s %s %sms %s'  # text: remote "method path" status bytes duration request-id
ACCESS_FIELDS = ("remote", "method", "path", "status", "bytes", "duration_ms", "request_id")  # JSON: the same
REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")  # a client's id is kept only if it looks like this


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception; an access line's fields too)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == ACCESS.name:
            entry.update(zip(ACCESS_FIELDS, record.args or (), strict=True))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


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
    """Send every log record to stderr in the configured format; a client's malformed request to DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    for name in SERVER_LOGGERS:
        logging.getLogger(name).addFilter(CLIENT_FAULTS)


class AccessLogger(AbstractAccessLogger):
    """One INFO line per answered request, on the `{{ cookiecutter.package_name }}.access` logger."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        fields = (
            request.remote,
            request.method,
            escaped(request.raw_path),
            response.status,
            response.body_length,
            round(time * 1000, 2),
            response.headers.get(REQUEST_ID_HEADER, "-"),  # none on aiohttp's own answer to a malformed request
        )
        # What `info` does, less its walk up the stack for the caller's line, which no access line needs.
        self.logger.handle(self.logger.makeRecord(self.logger.name, logging.INFO, "", 0, ACCESS_LINE, fields, None))


def escaped(text: str) -> str:
    """`text` with `"` and `\\` written as `\\x22` and `\\x5c`, as nginx does, so a client cannot forge a field."""
    if '"' in text or "\\" in text:
        return text.replace("\\", "\\x5c").replace('"', "\\x22")
    return text


def access_log(settings: Settings) -> dict[str, Any]:
    """The server's access log arguments, for `web.Application(handler_args=...)`.

    This module's logger, or none if ACCESS_LOG is off (gunicorn's own
    `--access-logfile` then applies).
    """
    return {"access_log": ACCESS, "access_log_class": AccessLogger} if settings.access_log else {}


def request_id(request: web.Request) -> str:
    """The request's id: the client's X-Request-ID if it looks sane, else a new random one; the same on every call."""
    known: str | None = request.get(REQUEST_ID)
    if known is None:
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        known = request[REQUEST_ID] = sent if SANE_REQUEST_ID.fullmatch(sent) else os.urandom(16).hex()
    return known


async def send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer carries its request's id, JSON errors included."""
    response.headers[REQUEST_ID_HEADER] = request_id(request)
