"""The outbound HTTP client: one shared session, calls with a timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from .keys import SETTINGS, UPSTREAM


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


async def fetch_status(session: aiohttp.ClientSession, url: str) -> dict[str, object]:
    """GET the upstream's JSON status object."""
    try:
        async with session.get(url) as response:
            if response.status >= 400:
                raise UpstreamError(f"upstream answered HTTP {response.status}")
            data = await response.json(content_type=None)
    except TimeoutError:
        raise UpstreamTimeout("upstream did not answer in time") from None
    except (aiohttp.ClientError, ValueError) as error:
        raise UpstreamError(f"upstream failed: {type(error).__name__}") from None
    if not isinstance(data, dict):
        raise UpstreamError("upstream did not send a JSON object")
    return data
