"""Stand-ins for websocket subscribers, for tests of the event hub without a network."""

from __future__ import annotations

import asyncio
import json


class RecordingSubscriber:
    """Keeps what the hub sends and how it was closed."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self.changed = asyncio.Event()

    async def send_str(self, data: str) -> None:
        self.messages.append(data)
        self.changed.set()

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.close_code, self.close_reason = code, message.decode()
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

    @property
    def ids(self) -> list[int]:
        """The ids of the events sent so far, in the order they came."""
        return [json.loads(message)["id"] for message in self.messages]


class GoneSubscriber(RecordingSubscriber):
    """A client whose connection broke."""

    async def send_str(self, data: str) -> None:
        raise ConnectionResetError("connection reset by peer")


class StalledSubscriber(RecordingSubscriber):
    """A client that stopped reading: sending to it never finishes."""

    async def send_str(self, data: str) -> None:
        await asyncio.Event().wait()


class TiringSubscriber(RecordingSubscriber):
    """A client that takes `takes` events, then stops reading: the next send never finishes."""

    def __init__(self, takes: int) -> None:
        super().__init__()
        self.takes = takes
        self.stalled = asyncio.Event()  # set once a send hangs

    async def send_str(self, data: str) -> None:
        if len(self.messages) == self.takes:
            self.stalled.set()
            await asyncio.Event().wait()
        await super().send_str(data)


class DeafSubscriber(StalledSubscriber):
    """A client that reads nothing at all: neither a send nor the closing handshake ever finishes."""

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class FaultySubscriber(RecordingSubscriber):
    """Sending to it fails with an error no one expects: a bug, not a gone client."""

    async def send_str(self, data: str) -> None:
        raise RuntimeError("a bug in sending")
