"""Types and test doubles shared by the pattern files."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
JSON_HEADERS = {"Content-Type": "application/json"}  # for bodies sent as raw bytes


class RecordingSubscriber:
    """Stands in for a websocket: keeps what the hub sends and how it was closed."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.close_code: int | None = None

    async def send_str(self, data: str) -> None:
        self.messages.append(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.close_code = code
        return True


class ClientFactory(Protocol):
    """Builds a test client for an app whose settings differ from the test's."""

    async def __call__(self, **changes: Any) -> Client: ...
