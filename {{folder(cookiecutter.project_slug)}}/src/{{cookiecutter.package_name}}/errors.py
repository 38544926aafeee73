"""What every handler's answer gets without having to ask: its request id, and JSON for every error.

routes.py wraps each handler in `handled` when it registers it, so a
handler raises domain errors and never maps them itself, and a new handler
gets the mapping too. No middleware and no on_response_prepare signal: each
is one more coroutine on every request, where a wrapper costs only the try
block.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .items import KeyReused, StoreUnavailable, ValidationError
from .keys import REQUEST_ID
from .logs import REQUEST_ID_HEADER, request_id
from .upstream import UpstreamError, UpstreamTimeout

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: Callable[..., web.HTTPException], code: str, message: str, **kwargs: Any) -> web.HTTPException:
    """An HTTP exception of class `status` whose body is `{"error": {"code", "message"}}`."""
    body = json.dumps({"error": {"code": code, "message": message}})
    return status(text=body, content_type="application/json", **kwargs)


def handled(handler: Handler) -> Handler:
    """`handler`, its answer carrying the request id, every error it raises answered as a JSON error.

    A domain error gets its 4xx or 5xx; a bug gets a 500 and one ERROR with its traceback, naming the request id.
    """

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except Exception as error:
            identifier = request.get(REQUEST_ID) or request_id(request)
            answer = error if isinstance(error, web.HTTPException) else json_error_for(request, error, identifier)
            answer.headers[REQUEST_ID_HEADER] = identifier
            raise answer from None
        # Made only now, and kept nowhere but in the answer: a handler that uses it before (kept_request_id) has
        # set it already.
        response.headers.setdefault(REQUEST_ID_HEADER, request_id(request))
        return response

    return wrapper


def kept_request_id(request: web.Request) -> str:
    """The request's id, for a handler that uses it before its answer (to call another service, in a handshake).

    It is kept on the request, so that an error raised later is answered and logged under the same id; the handler
    must also set it on its answer.
    """
    request[REQUEST_ID] = identifier = request_id(request)
    return identifier


def json_error_for(request: web.Request, error: Exception, identifier: str) -> web.HTTPException:
    """The JSON error that answers `error` to the request whose id is `identifier`, logged as the kind of failure it is.

    A client's mistake: its 4xx. A failure outside the service (the store, the upstream): a WARNING and a 5xx.
    A bug: an ERROR with its traceback, and a 500.
    """
    if isinstance(error, ValidationError):
        return json_error(web.HTTPBadRequest, "invalid", str(error))
    if isinstance(error, KeyReused):
        return json_error(web.HTTPUnprocessableEntity, "idempotency_key_reused", str(error))
    if not isinstance(error, StoreUnavailable | UpstreamError):
        log.error("%s %s failed, request id %s", request.method, request.path, identifier, exc_info=error)
        message = f"the service failed; its log has the details under request id {identifier}"
        return json_error(web.HTTPInternalServerError, "internal", message)
    log.warning("%s %s: %s", request.method, request.path, error)
    if isinstance(error, StoreUnavailable):
        return json_error(web.HTTPServiceUnavailable, "unavailable", str(error), headers={"Retry-After": "1"})
    if isinstance(error, UpstreamTimeout):
        return json_error(web.HTTPGatewayTimeout, "upstream_timeout", str(error))
    return json_error(web.HTTPBadGateway, "upstream_error", str(error))
