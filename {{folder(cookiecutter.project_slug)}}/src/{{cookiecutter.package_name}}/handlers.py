"""HTTP and websocket handlers: thin translations between requests and the domain."""

from __future__ import annotations

import asyncio
import json

from aiohttp import WSMsgType, web

from .errors import json_error, kept_request_id
from .events import Pace, ReadCheck, bound_link, reply_to
from .fingerprint import fingerprint
from .items import (
    EVENT_RETENTION,
    ID_MAX,
    PAGE_LIMIT,
    PAGE_MAX,
    Item,
    json_integer,
    parse_after,
    parse_idempotency_key,
    parse_item_id,
    parse_new_item,
    parse_page,
)
from .keys import HUB, SETTINGS, STORE, UPSTREAM
from .logs import REQUEST_ID_HEADER
from .openapi import Answer, Operation, Parameter, document, documented
from .schemas import (
    ERROR,
    FINGERPRINT,
    IDEMPOTENCY_KEY,
    ITEM,
    ITEM_EVENT,
    ITEM_ID,
    NEW_ITEM,
    PAGE,
    UPSTREAM_STATUS,
    Schema,
    integer,
    status,
)
from .upstream import fetch_status

HEALTHY = json.dumps({"status": "ok"}).encode()
WS_MAX_MESSAGE = 4096
# One decoder for every body: json.loads given parse_int builds a new one per call, half of its time on a small body.
BODY_DECODER = json.JSONDecoder(parse_int=json_integer)

INVALID = Answer("the request breaks a rule; `message` says which", ERROR)
NOT_FOUND = Answer("no item has this id", ERROR)
UNAVAILABLE = Answer(
    "the store cannot serve now (down, too slow or refusing); retry after Retry-After seconds",
    ERROR,
    headers={"Retry-After": "seconds to wait before a retry"},
)
AN_ITEM_ID = Parameter("item_id", "path", ITEM_ID, "the item's id")
# After a 201, the item it made can be read, fingerprinted and deleted: the links say how.
ITEM_LINKS: dict[str, Schema] = {
    f"{verb}Item": {"operationId": operation_id, "parameters": {"item_id": "$response.body#/id"}}
    for verb, operation_id in [("Get", "get_item"), ("Fingerprint", "item_fingerprint"), ("Delete", "delete_item")]
}


@documented(Operation("Liveness: the process answers", {200: Answer("alive", status("ok"))}))
async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.Response(body=HEALTHY, content_type="application/json")


@documented(
    Operation(
        "Readiness: the process and its store answer",
        {200: Answer("ready to serve", status("ready")), 503: UNAVAILABLE},
    )
)
async def ready(request: web.Request) -> web.Response:
    """Readiness: the item store answers too."""
    await request.app[STORE].ping()
    return web.json_response({"status": "ready"})


class ClientClosedRequest(web.HTTPClientError):
    """nginx's 499: the status the access log records for a client that left before sending its whole request."""

    status_code = 499


async def read_json(request: web.Request) -> object:
    """The decoded JSON body, or a 4xx JSON error saying what is wrong with it."""
    if request.content_type != "application/json":
        raise json_error(web.HTTPUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
    settings = request.app[SETTINGS]
    try:
        async with asyncio.timeout(settings.body_timeout):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = settings.max_body_bytes
        raise json_error(
            web.HTTPRequestEntityTooLarge, "too_large", f"the body exceeds {limit} bytes", max_size=limit
        ) from None
    except ConnectionResetError:  # the client went away mid-body: no one to answer, nothing to report
        raise ClientClosedRequest(reason="Client Closed Request") from None
    except web.RequestPayloadError:  # e.g. a body that is not in the Content-Encoding it claims
        message = "the body does not match its Content-Encoding"
        raise refuse_and_close(request, json_error(web.HTTPBadRequest, "malformed_body", message)) from None
    except TimeoutError:  # a client sending slowly, or not at all, must not hold a connection forever
        message = f"the body did not arrive within {settings.body_timeout:g} s"
        raise refuse_and_close(request, json_error(web.HTTPRequestTimeout, "body_timeout", message)) from None
    try:
        return BODY_DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))  # as json.loads does
    except (ValueError, RecursionError):
        raise json_error(web.HTTPBadRequest, "malformed_json", "the body is not valid UTF-8 JSON") from None


def refuse_and_close(request: web.Request, refusal: web.HTTPException) -> web.HTTPException:
    """`refusal`, sent without reading the rest of the body (unusable or not coming), then the connection closed."""
    request.content.feed_eof()
    refusal.force_close()
    return refusal


def item_id_of(request: web.Request) -> int:
    """The item id in the URL, or a 404 JSON error when no item can have it."""
    item_id = parse_item_id(request.match_info["item_id"])
    if item_id is None:
        raise no_such_item()
    return item_id


def no_such_item() -> web.HTTPException:
    """The 404 for an id that names no item."""
    return json_error(web.HTTPNotFound, "not_found", "no item has this id")


async def find_item(request: web.Request) -> Item:
    """The item named by the URL, or a 404 JSON error."""
    item = await request.app[STORE].get(item_id_of(request))
    if item is None:
        raise no_such_item()
    return item


@documented(
    Operation(
        "Create an item",
        {
            201: Answer(
                "created, or (with Idempotent-Replayed) the item this Idempotency-Key created before",
                ITEM,
                headers={"Location": "the item's path, /items/{id}"},
                sometimes={"Idempotent-Replayed": "`true` when the answer is a retry's, and nothing was stored"},
                links=ITEM_LINKS,
            ),
            400: INVALID,
            408: Answer("the body did not arrive in time (BODY_TIMEOUT)", ERROR),
            413: Answer("the body is over MAX_BODY_BYTES", ERROR),
            415: Answer("the body is not sent as application/json", ERROR),
            422: Answer("this Idempotency-Key created another item", ERROR),
            503: UNAVAILABLE,
        },
        parameters=[
            Parameter(
                "Idempotency-Key",
                "header",
                IDEMPOTENCY_KEY,
                "a key of the client's (a UUID, say): a retry with it within 24 h gets the item it created",
            )
        ],
        body=NEW_ITEM,
    )
)
async def create_item(request: web.Request) -> web.Response:
    """POST /items: store an item (and its event), tell the subscribers.

    With an Idempotency-Key header, a retry gets the item the key created,
    marked `Idempotent-Replayed: true`, and nothing is stored again.
    """
    key = parse_idempotency_key(request.headers.getall("Idempotency-Key", ()))
    new = parse_new_item(await read_json(request))
    if key is None:
        item, created = await request.app[STORE].add(new), True
    else:
        item, created = await request.app[STORE].add_once(new, key)
    headers = {"Location": f"/items/{item.id}"}
    if created:
        request.app[HUB].wake()
    else:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(item.to_json(), status=201, headers=headers)


@documented(
    Operation(
        "One page of items, oldest first",
        {200: Answer("the page, with the limit and offset it answers", PAGE), 400: INVALID, 503: UNAVAILABLE},
        parameters=[
            Parameter("limit", "query", integer(1, PAGE_MAX, default=PAGE_LIMIT), "the most items to list"),
            Parameter("offset", "query", integer(0, ID_MAX, default=0), "how many items to skip"),
        ],
    )
)
async def list_items(request: web.Request) -> web.Response:
    """GET /items?limit=&offset=: one page of items, oldest first."""
    limit, offset = parse_page(request.query)
    items = await request.app[STORE].list(limit, offset)
    return web.json_response({"items": [item.to_json() for item in items], "limit": limit, "offset": offset})


@documented(
    Operation("One item", {200: Answer("the item", ITEM), 404: NOT_FOUND, 503: UNAVAILABLE}, parameters=[AN_ITEM_ID])
)
async def get_item(request: web.Request) -> web.Response:
    """GET /items/{id}."""
    return web.json_response((await find_item(request)).to_json())


@documented(
    Operation("Delete an item", {204: Answer("deleted"), 404: NOT_FOUND, 503: UNAVAILABLE}, parameters=[AN_ITEM_ID])
)
async def delete_item(request: web.Request) -> web.Response:
    """DELETE /items/{id}: remove it (recording its event), tell the subscribers."""
    item = await request.app[STORE].delete(item_id_of(request))
    if item is None:
        raise no_such_item()
    request.app[HUB].wake()
    return web.Response(status=204)


@documented(
    Operation(
        "A slow digest of an item, computed off the event loop",
        {200: Answer("the digest, 64 hexadecimal digits", FINGERPRINT), 404: NOT_FOUND, 503: UNAVAILABLE},
        parameters=[AN_ITEM_ID],
    )
)
async def item_fingerprint(request: web.Request) -> web.Response:
    """GET /items/{id}/fingerprint: a slow digest, computed in a worker thread."""
    item = await find_item(request)
    digest = await asyncio.to_thread(fingerprint, item)
    return web.json_response({"id": item.id, "fingerprint": digest})


@documented(
    Operation(
        "The upstream service's status (UPSTREAM_URL)",
        {
            200: Answer("what the upstream answered", UPSTREAM_STATUS),
            502: Answer("the upstream failed: an error, no answer, or one over UPSTREAM_MAX_BYTES", ERROR),
            504: Answer("the upstream did not answer within UPSTREAM_TIMEOUT", ERROR),
        },
    )
)
async def upstream_status(request: web.Request) -> web.Response:
    """GET /upstream: the upstream service's status (504/502 when it fails)."""
    settings, session = request.app[SETTINGS], request.app[UPSTREAM]
    limit = settings.upstream_max_bytes
    identifier = kept_request_id(request)
    status = await fetch_status(session, settings.upstream_url, max_bytes=limit, request_id=identifier)
    return web.json_response({"upstream": status}, headers={REQUEST_ID_HEADER: identifier})


@documented(
    Operation(
        "Item events as they happen (a websocket)",
        {
            101: Answer("a websocket: one text frame per event, each an ItemEvent", ITEM_EVENT),
            400: Answer("`after` is not an event id, or the request is not a websocket handshake", ERROR),
            410: Answer("the events after `after` are no longer kept, or none has that id yet", ERROR),
            503: UNAVAILABLE,
        },
        parameters=[
            Parameter(
                "after",
                "query",
                integer(0, ID_MAX),
                "the id of the last event the client has: the kept events after it come first",
            )
        ],
        description=(
            "Connect with a websocket client. Frames are ItemEvent objects (see components), oldest first; "
            "a frame the client sends gets a JSON reply. A subscriber that falls behind is closed with 1013, "
            "saying the id to resume after."
        ),
    )
)
async def events(request: web.Request) -> web.WebSocketResponse:
    """GET /events[?after=<id>] (websocket): item events as they happen, first those after `id`; answers pings."""
    after = parse_after(request.query)
    ws = web.WebSocketResponse(autoping=False, max_msg_size=WS_MAX_MESSAGE)  # pongs are the read check's
    if not ws.can_prepare(request).ok:
        raise json_error(web.HTTPBadRequest, "websocket_required", "connect with a websocket client")
    hub = request.app[HUB]
    if after is not None and after < hub.head - EVENT_RETENTION:
        hint = f"only the newest {EVENT_RETENTION} events are kept: list /items, then subscribe without 'after'"
        raise json_error(web.HTTPGone, "events_expired", hint)
    # Past the hub's head, ask the store: another process may have written since the hub's last read.
    if after is not None and after > hub.head and after > (newest := await hub.store.last_event_id()):
        hint = f"no event has id {after}, the newest is {newest}: list /items, then subscribe without 'after'"
        raise json_error(web.HTTPGone, "events_unknown", hint)
    ws.headers[REQUEST_ID_HEADER] = kept_request_id(request)  # the handshake is sent before `handled` sees the answer
    await ws.prepare(request)
    transport = request.transport
    if transport is not None:
        bound_link(transport)
    async with hub.subscribe(ws, transport, after) as subscription, ReadCheck(ws.ping, subscription) as check:
        pace = Pace()
        try:
            async for message in ws:
                await pace.turn()
                if message.type is WSMsgType.ERROR:  # e.g. a frame over WS_MAX_MESSAGE: aiohttp closes with 1009
                    break
                if message.type is WSMsgType.PONG:
                    check.pong(message.data)
                elif message.type is WSMsgType.PING:
                    await ws.pong(message.data)
                else:
                    await ws.send_str(reply_to(message.data if message.type is WSMsgType.TEXT else None))
        except ConnectionError:  # the client went away mid-reply
            pass
    return ws


@documented(Operation("This document: the API in OpenAPI 3.1", {200: Answer("the document", {"type": "object"})}))
async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(document(request.app))
