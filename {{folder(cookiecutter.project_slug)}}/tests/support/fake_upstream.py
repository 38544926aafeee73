"""A fake upstream service, served locally so tests never need the internet."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

BIG_BODY = json.dumps({"status": "ok", "padding": "x" * 256 * 1024}).encode()  # a JSON object of 256 KiB and a bit
CHUNK = 16 * 1024
SEEN_REQUEST_IDS: web.AppKey[list[str | None]] = web.AppKey("seen_request_ids")


async def status(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": "1.2.3"})


async def request_id(request: web.Request) -> web.Response:
    """The status, with the X-Request-ID the call came with."""
    return web.json_response({"status": "ok", "request_id": request.headers.get("X-Request-ID")})


async def delayed(request: web.Request) -> web.Response:
    """The status, after the number of milliseconds in the path."""
    milliseconds = int(request.match_info["milliseconds"])
    await asyncio.sleep(milliseconds / 1000)
    return web.json_response({"status": "ok", "delayed_ms": milliseconds})


async def never_answers(request: web.Request) -> web.Response:
    """Waits until the caller gives up (the server cancels a handler whose client went away).

    A timeout that must fire then never races a slow answer.
    """
    answer: asyncio.Future[web.Response] = asyncio.get_running_loop().create_future()  # that nothing resolves
    return await answer


async def server_error(request: web.Request) -> web.Response:
    """A 503; the X-Request-ID the call came with goes on the end of the app's SEEN_REQUEST_IDS."""
    request.app[SEEN_REQUEST_IDS].append(request.headers.get("X-Request-ID"))
    return web.json_response({"error": "boom"}, status=503)


async def client_error(request: web.Request) -> web.Response:
    """A 4xx with a JSON object body: relaying it as a success would go unnoticed by a parser."""
    return web.json_response({"status": "no such thing"}, status=404)


async def garbage(request: web.Request) -> web.Response:
    return web.Response(text="<html>not json</html>", content_type="text/html")


async def not_an_object(request: web.Request) -> web.Response:
    return web.json_response([1, 2, 3])


async def reset(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


async def big(request: web.Request) -> web.Response:
    """BIG_BODY, its size announced in Content-Length."""
    return web.Response(body=BIG_BODY, content_type="application/json")


async def big_chunked(request: web.Request) -> web.StreamResponse:
    """BIG_BODY in chunks, its size not announced."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(BIG_BODY), CHUNK):
        await response.write(BIG_BODY[start : start + CHUNK])
    await response.write_eof()
    return response


async def big_stalled(request: web.Request) -> web.StreamResponse:
    """Announces BIG_BODY in Content-Length, then sends nothing until the caller gives up."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(BIG_BODY)
    await response.prepare(request)
    return await never_answers(request)


def fake_upstream() -> web.Application:
    """An app answering /status (at once, or /delayed/<ms>), and misbehaving on purpose on every other path."""
    app = web.Application()
    app[SEEN_REQUEST_IDS] = []
    app.router.add_get("/status", status)
    app.router.add_get("/request-id", request_id)
    app.router.add_get(r"/delayed/{milliseconds:\d+}", delayed)
    app.router.add_get("/slow", never_answers)
    app.router.add_get("/error", server_error)
    app.router.add_get("/missing", client_error)
    app.router.add_get("/garbage", garbage)
    app.router.add_get("/list", not_an_object)
    app.router.add_get("/reset", reset)
    app.router.add_get("/big", big)
    app.router.add_get("/big-chunked", big_chunked)
    app.router.add_get("/big-stalled", big_stalled)
    return app
