"""The fair ceiling: the leanest aiohttp app doing what the baked service does on the benchmarked paths.

`GET /health` sends the same pre-encoded body. `GET /items/{item_id}` and `POST /items` run the service's
query and insert through the same driver, chosen by DATABASE_URL (one aiosqlite connection, or an asyncpg pool),
and send the same JSON; `POST /items` takes a valid item's JSON and checks nothing. The database must hold the
service's schema. Same loop (the first argument), no access log.

Run: `HOST=127.0.0.1 PORT=8081 DATABASE_URL=sqlite:////tmp/app.db python benchmarks/bare_app.py uvloop`
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator

import aiosqlite
import asyncpg
import uvloop
from aiohttp import web

HEALTH = json.dumps({"status": "ok"}).encode()
SELECT = "SELECT id, name, quantity FROM items WHERE id = {}"
INSERT = "INSERT INTO items (name, quantity) VALUES ({}, {}) RETURNING id, name, quantity"
URL = web.AppKey("url", str)
SQLITE = web.AppKey("sqlite", aiosqlite.Connection)
POOL = web.AppKey("pool", asyncpg.Pool)


async def health(request: web.Request) -> web.Response:
    """The baked service's /health body."""
    return web.Response(body=HEALTH, content_type="application/json")


Row = sqlite3.Row | asyncpg.Record


def item_response(row: Row | None) -> web.Response:
    """The item as JSON, or a 404."""
    if row is None:
        return web.json_response({"error": "not_found"}, status=404)
    return web.json_response({"id": row[0], "name": row[1], "quantity": row[2]})


def created_response(row: Row) -> web.Response:
    """The new item as JSON, where it can be read."""
    headers = {"Location": f"/items/{row[0]}"}
    return web.json_response({"id": row[0], "name": row[1], "quantity": row[2]}, status=201, headers=headers)


async def sqlite_item(request: web.Request) -> web.Response:
    """One row through the app's aiosqlite connection."""
    item_id = int(request.match_info["item_id"])
    rows = await request.app[SQLITE].execute_fetchall(SELECT.format("?"), (item_id,))
    return item_response(next(iter(rows), None))


async def sqlite_create(request: web.Request) -> web.Response:
    """One insert through the app's aiosqlite connection."""
    new = await request.json()
    [row] = await request.app[SQLITE].execute_fetchall(INSERT.format("?", "?"), (new["name"], new["quantity"]))
    return created_response(row)


async def postgresql_item(request: web.Request) -> web.Response:
    """One row through a connection borrowed from the app's asyncpg pool."""
    item_id = int(request.match_info["item_id"])
    async with request.app[POOL].acquire() as c:
        row = await c.fetchrow(SELECT.format("$1"), item_id)
    return item_response(row)


async def postgresql_create(request: web.Request) -> web.Response:
    """One insert through a connection borrowed from the app's asyncpg pool."""
    new = await request.json()
    async with request.app[POOL].acquire() as c:
        row = await c.fetchrow(INSERT.format("$1", "$2"), new["name"], new["quantity"])
    assert row is not None  # RETURNING gives the new row
    return created_response(row)


async def sqlite_context(app: web.Application) -> AsyncIterator[None]:
    """One autocommit connection in WAL mode, as the service opens it."""
    connection = await aiosqlite.connect(app[URL].removeprefix("sqlite:///"), isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):
        await connection.execute(f"PRAGMA {pragma}")
    app[SQLITE] = connection
    yield
    await connection.close()


async def no_reset(connection: asyncpg.Connection) -> None:
    """Nothing to reset on a connection given back: no statement here changes its session, as in the service."""


async def postgresql_context(app: web.Application) -> AsyncIterator[None]:
    """A pool of the service's size, which gives connections back without a reset round trip, as the service's."""
    async with asyncpg.create_pool(app[URL], min_size=2, max_size=10, reset=no_reset) as pool:
        app[POOL] = pool
        yield


def main() -> None:
    """Serve HOST:PORT on the named loop until interrupted."""
    url = os.environ["DATABASE_URL"]
    app = web.Application()
    app[URL] = url
    app.router.add_get("/health", health)
    if url.startswith("sqlite:///"):
        app.cleanup_ctx.append(sqlite_context)
        app.router.add_get("/items/{item_id}", sqlite_item)
        app.router.add_post("/items", sqlite_create)
    else:
        app.cleanup_ctx.append(postgresql_context)
        app.router.add_get("/items/{item_id}", postgresql_item)
        app.router.add_post("/items", postgresql_create)
    loop = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}[sys.argv[1]]()
    host, port = os.environ["HOST"], int(os.environ["PORT"])
    web.run_app(app, host=host, port=port, loop=loop, access_log=None, print=None)


if __name__ == "__main__":
    main()
