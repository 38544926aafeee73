"""The baseline: the leanest aiohttp app answering the benchmarked paths with the same JSON.

Run: `HOST=127.0.0.1 PORT=8081 python benchmarks/bare_app.py uvloop` (or `asyncio`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from aiohttp import web

HEALTH = json.dumps({"status": "ok"}).encode()
ITEM = {"id": 1, "name": "bench", "quantity": 1}


async def health(request: web.Request) -> web.Response:
    """The same body as the baked service's /health."""
    return web.Response(body=HEALTH, content_type="application/json")


async def item(request: web.Request) -> web.Response:
    """The item the baked service reads from its database, encoded per request as it does."""
    return web.json_response(ITEM)


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    """A fresh loop of the named kind."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main() -> None:
    """Serve until interrupted, with no access log (as the baked service runs)."""
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/items/1", item)
    loop = new_loop(sys.argv[1] if len(sys.argv) > 1 else "uvloop")
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8081"))
    print(f"serving on http://{host}:{port}", flush=True)
    web.run_app(app, host=host, port=port, loop=loop, access_log=None, print=None)


if __name__ == "__main__":
    main()
