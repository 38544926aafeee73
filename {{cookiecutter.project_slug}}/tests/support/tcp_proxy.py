"""A TCP proxy on 127.0.0.1 that a test controls, to play a network that goes silent without closing anything."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class Proxy:
    """Forwards every connection to `target`; `silence()` makes the open ones drop what they carry, both ways,
    while their sockets stay open: a half-open connection, as after a cable pull or a NAT forgetting it."""

    target: tuple[str, int]
    port: int = 0
    silenced: set[asyncio.Task[None]] = field(default_factory=set)
    _pumps: set[asyncio.Task[None]] = field(default_factory=set)
    _connections: set[asyncio.Task[None]] = field(default_factory=set)

    def silence(self) -> None:
        """From now on the connections open so far carry nothing; new ones are forwarded as before."""
        self.silenced |= self._pumps

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        while data := await reader.read(CHUNK):
            if me not in self.silenced:
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """Forward one connection until either side closes it or the proxy stops."""
        me = asyncio.current_task()
        assert me is not None
        self._connections.add(me)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
            pumps = {
                asyncio.create_task(self._pump(client_reader, server_writer)),
                asyncio.create_task(self._pump(server_reader, client_writer)),
            }
            self._pumps |= pumps
            try:
                await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                self._pumps -= pumps
                server_writer.close()
        except OSError:
            pass  # the target refused: the client sees its connection closed
        finally:
            self._connections.discard(me)
            client_writer.close()


@contextlib.asynccontextmanager
async def running_proxy(target: tuple[str, int]) -> AsyncIterator[Proxy]:
    """A Proxy to `target`, listening on a free port of 127.0.0.1 until the block ends."""
    proxy = Proxy(target)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        connections = list(proxy._connections)
        for connection in connections:
            connection.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()
