"""A TCP proxy the test controls: it forwards every byte until told to hang or to silence its connections.

Hung, it keeps its connections open and lets nothing through (a server that stopped answering, or an answer lost
on the way). Silencing drops the bytes of the connections open so far only (half-open ones, which a NAT or
firewall forgot).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`; `hang()` stops the bytes both ways, `resume()` lets them go on."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.hung_on: bytes | None = None  # set: hang as soon as an answer from the target holds these bytes
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._held = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._silenced: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.WriteTransport] = set()

    def hang(self) -> None:
        """From now on nothing passes, in either direction; connections stay open and new ones are accepted."""
        self._flowing.clear()
        self._held.set()

    def resume(self) -> None:
        """Pass on what was held, and everything after."""
        self._held.clear()
        self._flowing.set()

    def silence(self) -> None:
        """The connections open now drop every byte from here on, both ways, and stay open; new ones flow."""
        self._silenced |= self._handlers

    async def until_hung(self) -> None:
        """Return once the proxy holds bytes (at once if it does)."""
        await self._held.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._transports.add(writer.transport)
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
            self._transports.add(target_writer.transport)
            await asyncio.gather(
                self._pipe(reader, target_writer, handler, watch=False),
                self._pipe(target_reader, writer, handler, watch=True),
                return_exceptions=True,
            )
        except OSError:
            pass
        finally:
            writer.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: asyncio.Task[None], *, watch: bool
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                if watch and self.hung_on is not None and self.hung_on in data:
                    self.hang()
                await self._flowing.wait()
                if writer.transport.is_closing():  # cut while it held the bytes
                    break
                if handler not in self._silenced:
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def tcp_proxy(target: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    """A running proxy to `target`; at exit every connection through it is cut."""
    proxy = TcpProxy(target)
    server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for transport in proxy._transports:
            transport.abort()
        proxy.resume()  # the pipes that held bytes wake, find their connection gone and end
        await asyncio.gather(*proxy._handlers, return_exceptions=True)
        await server.wait_closed()
