"""JSON error responses, for every handler without it having to ask.

routes.py wraps each handler in `json_errors` when it registers it, so a
handler raises domain errors and never maps them itself; a new handler gets
the mapping too. No middleware: a middleware is one more call on every
request, where a wrapper costs only the try block.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .items import KeyReused, StoreUnavailable, ValidationError
from .upstream import UpstreamError, UpstreamTimeout

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: Callable[..., web.HTTPException], code: str, message: str, **kwargs: Any) -> web.HTTPException:
    """An HTTP exception of class `status` whose body is `{"error": {"code", "message"}}`."""
    body = json.dumps({"error": {"code": code, "message": message}})
    return status(text=body, content_type="application/json", **kwargs)


def json_errors(handler: Handler) -> Handler:
    """`handler`, with every domain error it raises answered as a JSON error."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ValidationError as error:
            raise json_error(web.HTTPBadRequest, "invalid", str(error)) from None
        except KeyReused as error:
            raise json_error(web.HTTPUnprocessableEntity, "idempotency_key_reused", str(error)) from None
        except StoreUnavailable as error:
            log.warning("%s %s: %s", request.method, request.path, error)
            raise json_error(
                web.HTTPServiceUnavailable, "unavailable", str(error), headers={"Retry-After": "1"}
            ) from None
        except UpstreamError as error:
            log.warning("%s %s: %s", request.method, request.path, error)
            if isinstance(error, UpstreamTimeout):
                raise json_error(web.HTTPGatewayTimeout, "upstream_timeout", str(error)) from None
            raise json_error(web.HTTPBadGateway, "upstream_error", str(error)) from None

    return wrapper
