"""The outbound HTTP client: one shared session, calls with a timeout and a size limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from .keys import SETTINGS, UPSTREAM
from .logs import REQUEST_ID_HEADER
from .settings import Settings

DEFAULT_MAX_BYTES = Settings().upstream_max_bytes


class UpstreamError(Exception):
    """The upstream service failed or answered something unusable."""


class UpstreamTimeout(UpstreamError):
    """The upstream service did not answer in time."""


async def upstream_context(app: web.Application) -> AsyncIterator[None]:
    """Open the shared client session for the app's lifetime."""
    timeout = aiohttp.ClientTimeout(total=app[SETTINGS].upstream_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[UPSTREAM] = session
        yield


async def fetch_status(
    session: aiohttp.ClientSession, url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, request_id: str | None = None
) -> dict[str, object]:
    """GET the upstream's JSON status object, passing on `request_id`.

    An answer over `max_bytes` is refused, and no more of it is read.
    """
    headers = {REQUEST_ID_HEADER: request_id} if request_id is not None else None
    try:
        async with session.get(url, headers=headers) as response:
            if response.status >= 400:
                raise UpstreamError(f"upstream answered HTTP {response.status}")
            data = json.loads(await read_at_most(response, max_bytes))
    except TimeoutError:
        raise UpstreamTimeout("upstream did not answer in time") from None
    except (aiohttp.ClientError, ValueError, RecursionError) as error:
        raise UpstreamError(f"upstream failed: {type(error).__name__}") from None
    if not isinstance(data, dict):
        raise UpstreamError("upstream did not send a JSON object")
    return data


async def read_at_most(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, or UpstreamError once it is known to exceed `max_bytes`: from Content-Length, else while reading."""
    too_large = UpstreamError(f"upstream answered over {max_bytes} bytes (UPSTREAM_MAX_BYTES)")
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_large
    body = bytearray()
    while chunk := await response.content.read(max_bytes + 1 - len(body)):
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)
