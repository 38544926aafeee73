"""A fake upstream service, served locally so tests never need the internet."""

from __future__ import annotations

import asyncio

from aiohttp import web

SLOW_SECONDS = 5.0


async def status(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": "1.2.3"})


async def delayed(request: web.Request) -> web.Response:
    """The status, after the number of milliseconds in the path."""
    milliseconds = int(request.match_info["milliseconds"])
    await asyncio.sleep(milliseconds / 1000)
    return web.json_response({"status": "ok", "delayed_ms": milliseconds})


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(SLOW_SECONDS)
    return web.json_response({"status": "late"})


async def server_error(request: web.Request) -> web.Response:
    return web.json_response({"error": "boom"}, status=503)


async def garbage(request: web.Request) -> web.Response:
    return web.Response(text="<html>not json</html>", content_type="text/html")


async def not_an_object(request: web.Request) -> web.Response:
    return web.json_response([1, 2, 3])


async def reset(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


def fake_upstream() -> web.Application:
    """An app answering /status (at once, or /delayed/<ms>), and misbehaving on purpose on every other path."""
    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_get(r"/delayed/{milliseconds:\d+}", delayed)
    app.router.add_get("/slow", slow)
    app.router.add_get("/error", server_error)
    app.router.add_get("/garbage", garbage)
    app.router.add_get("/list", not_an_object)
    app.router.add_get("/reset", reset)
    return app
