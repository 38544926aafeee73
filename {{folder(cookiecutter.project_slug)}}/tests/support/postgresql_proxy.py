"""A proxy to PostgreSQL that cuts the connection carrying a chosen answer: before the client gets it, or after.

What it tells apart is what a client can know: an answer that arrived is the outcome, whatever happens to its
connection next; an answer that never arrived leaves the outcome unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

CHUNK = 65536
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"  # then the transaction's status, one byte: what ends every answer
BACKEND_KEY_DATA = b"K\x00\x00\x00\x0c"  # then the session's process id and its cancel key, four bytes each


class Cut(enum.Enum):
    """When the connection that carries the chosen answer is cut."""

    BEFORE = enum.auto()  # the answer is dropped and both sides closed: the client never gets it
    AFTER = enum.auto()  # the whole answer reaches the client, then both sides are closed
    # The answer is held until the server ends the session (the test terminates it, `held` says which), then passed
    # on with the server's last words: what a client sees when its session is terminated right after a commit.
    BY_SERVER = enum.auto()


def command_complete(tag: bytes) -> bytes:
    """The message that ends a statement's result: b"INSERT 0 1" for an insert of one row."""
    return b"C" + (4 + len(tag) + 1).to_bytes(4, "big") + tag + b"\x00"


class AnswerProxy:
    """Forwards 127.0.0.1:`port` to `target` until told to cut the connection of an answer."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.held: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.cuts = 0  # connections cut so far
        self._marker: bytes | None = None
        self._when = Cut.AFTER
        self._connections: set[asyncio.Task[None]] = set()

    def cut(self, tag: bytes, when: Cut) -> None:
        """Cut the next connection whose server completes a command with `tag` (b"DELETE 1"), as `when` says."""
        self._marker, self._when = command_complete(tag), when
        self.held = asyncio.get_running_loop().create_future()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
            try:
                await asyncio.gather(forward(client_reader, server_writer), self._answer(server_reader, client_writer))
            finally:
                server_writer.transport.abort()
        except OSError:
            pass
        finally:
            client_writer.transport.abort()
            self._connections.discard(task)

    async def _answer(self, server: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        """Forward the server's bytes to the client; cut the connection when the chosen answer comes."""
        pid = None
        while data := await server.read(CHUNK):
            if pid is None and (at := data.find(BACKEND_KEY_DATA)) >= 0:
                pid = int.from_bytes(data[at + 5 : at + 9], "big")
            if self._marker is None or self._marker not in data:
                client.write(data)
                continue
            self._marker = None
            self.cuts += 1
            if self._when is Cut.AFTER:
                while data[-6:-1] != READY_FOR_QUERY:
                    data += await server.read(CHUNK)
                client.write(data)
            elif self._when is Cut.BY_SERVER:
                assert pid is not None
                self.held.set_result(pid)
                while more := await server.read(CHUNK):
                    data += more
                client.write(data)
            break
        client.close()
        await client.wait_closed()


async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy `reader` to `writer` until it ends, then close `writer`."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


@contextlib.asynccontextmanager
async def answer_proxy(target: tuple[str, int]) -> AsyncIterator[AnswerProxy]:
    """A running proxy to `target`; at exit every connection through it is cut."""
    proxy = AnswerProxy(target)
    server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for connection in proxy._connections:
            connection.cancel()
        await asyncio.gather(*proxy._connections, return_exceptions=True)
        await server.wait_closed()


def through(port: int, url: str) -> str:
    """`url`, reached through the proxy listening on `port`, without TLS.

    The proxy must read the answers; and asyncpg's pool, cancelled mid-negotiation as it closes, can leave a TLS
    future nobody reads (noise).
    """
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}", query="sslmode=disable").geturl()
