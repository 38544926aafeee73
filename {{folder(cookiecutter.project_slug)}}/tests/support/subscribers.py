"""Stand-ins for websocket subscribers, for tests of the event hub without a network."""

from __future__ import annotations

import asyncio
import json


class RecordingSubscriber:
    """Keeps what the hub sends and how it was closed."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.close_code: int | None = None
        self.changed = asyncio.Event()

    async def send_str(self, data: str) -> None:
        self.messages.append(data)
        self.changed.set()

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.close_code = code
        self.changed.set()
        return True

    async def received(self, count: int) -> list[str]:
        """The item names of the first `count` events, once they are all here."""
        async with asyncio.timeout(2):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()
        return [json.loads(message)["item"]["name"] for message in self.messages[:count]]

    async def closed(self) -> int:
        """The close code, once the hub has closed this subscriber."""
        async with asyncio.timeout(2):
            while self.close_code is None:
                self.changed.clear()
                await self.changed.wait()
        return self.close_code


class GoneSubscriber(RecordingSubscriber):
    """A client whose connection broke."""

    async def send_str(self, data: str) -> None:
        raise ConnectionResetError("connection reset by peer")


class StalledSubscriber(RecordingSubscriber):
    """A client that stopped reading: sending to it never finishes."""

    async def send_str(self, data: str) -> None:
        await asyncio.Event().wait()
