"""Types for the test clients the fixtures build."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
JSON_HEADERS = {"Content-Type": "application/json"}  # for bodies sent as raw bytes
# What a websocket client sends to open one: how a test asks a plain HTTP request to upgrade.
WEBSOCKET_HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}
AgeKeys = Callable[[float], Awaitable[None]]  # the `age_keys` fixture: makes every idempotency key older
KeptKeys = Callable[[], Awaitable[int]]  # the `kept_keys` fixture: how many idempotency keys the store holds


class ClientFactory(Protocol):
    """Builds a test client for an app whose settings differ from the test's."""

    async def __call__(self, **changes: Any) -> Client: ...
