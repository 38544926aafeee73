"""Types for the test clients the fixtures build."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
JSON_HEADERS = {"Content-Type": "application/json"}  # for bodies sent as raw bytes


class ClientFactory(Protocol):
    """Builds a test client for an app whose settings differ from the test's."""

    async def __call__(self, **changes: Any) -> Client: ...
