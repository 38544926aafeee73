"""Every route of the service, declared in one place."""

from __future__ import annotations

from aiohttp import web

from . import handlers
from .errors import Handler, handled, json_error


def add_routes(app: web.Application) -> None:
    """Register the handlers, a JSON 405 per path and a JSON 404 for the rest, each `handled`."""
    _resource(app, "/health", GET=handlers.health)
    _resource(app, "/ready", GET=handlers.ready)
    _resource(app, "/items", GET=handlers.list_items, POST=handlers.create_item)
    _resource(app, "/items/{item_id}", GET=handlers.get_item, DELETE=handlers.delete_item)
    _resource(app, "/items/{item_id}/fingerprint", GET=handlers.item_fingerprint)
    _resource(app, "/upstream", GET=handlers.upstream_status)
    _resource(app, "/events", GET=handlers.events)
    _resource(app, "/openapi.json", GET=handlers.openapi)
    app.router.add_route("*", "/{path:.*}", handled(not_found))


def _resource(app: web.Application, path: str, **methods: Handler) -> None:
    resource = app.router.add_resource(path)
    if "GET" in methods:
        methods["HEAD"] = methods["GET"]
    for method, handler in methods.items():
        resource.add_route(method, handled(handler))
    resource.add_route("*", handled(_method_not_allowed(sorted(methods))))


def _method_not_allowed(allowed: list[str]) -> Handler:
    async def method_not_allowed(request: web.Request) -> web.StreamResponse:
        message = f"{request.method} is not allowed here; use {', '.join(allowed)}"
        raise json_error(
            web.HTTPMethodNotAllowed, "method_not_allowed", message, method=request.method, allowed_methods=allowed
        )

    return method_not_allowed


async def not_found(request: web.Request) -> web.StreamResponse:
    """Any path no route matches."""
    raise json_error(web.HTTPNotFound, "not_found", "no such path")
