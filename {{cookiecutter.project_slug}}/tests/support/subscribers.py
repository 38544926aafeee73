"""A stand-in for a websocket subscriber, for tests of the event hub without a network."""

from __future__ import annotations


class RecordingSubscriber:
    """Keeps what the hub sends and how it was closed."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.close_code: int | None = None

    async def send_str(self, data: str) -> None:
        self.messages.append(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.close_code = code
        return True
