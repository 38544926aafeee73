"""The HTTP API contract: every endpoint's answers, and a 4xx JSON error for every client mistake.

The pattern these tests follow is P10 (test_p10_http_api.py); this file is
the exhaustive list a change to the API must keep passing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient
from pytest_mock import MockerFixture

from {{ cookiecutter.package_name }} import handlers
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.items import (
    EVENT_PRUNE_EVERY,
    EVENT_RETENTION,
    ItemStore,
    NewItem,
    StoreUnavailable,
    ValidationError,
)
from {{ cookiecutter.package_name }}.keys import HUB
from {{ cookiecutter.package_name }}.settings import Settings

from .support.clients import JSON_HEADERS, WEBSOCKET_HANDSHAKE, Client, ClientFactory
from .support.conditions import until
from .support.fake_upstream import BIG_BODY

ID_MAX = 2**63 - 1  # a bigint: the largest id an item can have, in the store's schema and in URLs
QUANTITY_MAX = 2**31 - 1  # an integer column
Request = tuple[str, str, dict[str, Any]]  # method, path and the keyword arguments of `client.request`


async def error_of(response: ClientResponse) -> Any:
    """The `error.code` of a JSON error response."""
    assert response.content_type == "application/json"
    return (await response.json())["error"]["code"]


async def test_list_pages_with_limit_and_offset(client: Client, store: ItemStore) -> None:
    for name in ("a", "b", "c"):
        await store.add(NewItem(name=name, quantity=0))

    page = await (await client.get("/items", params={"limit": "2", "offset": "1"})).json()

    assert [item["name"] for item in page["items"]] == ["b", "c"]
    assert (page["limit"], page["offset"]) == (2, 1)


async def test_pages_list_items_oldest_first_each_once(client: Client, store: ItemStore) -> None:
    names = ["pear", "apple", "fig", "date", "banana", "cherry"]  # neither sorted by name nor reversed
    items = [await store.add(NewItem(name=name, quantity=0)) for name in names]
    await store.delete(items[1].id)  # a gap in the ids: an offset counts items, not ids

    pages = [await (await client.get("/items", params={"limit": "2", "offset": str(n)})).json() for n in (0, 2, 4)]

    assert [item["name"] for page in pages for item in page["items"]] == ["pear", "fig", "date", "banana", "cherry"]
    assert [(page["limit"], page["offset"]) for page in pages] == [(2, 0), (2, 2), (2, 4)]


@pytest.mark.parametrize("offset", [5, 6])
async def test_an_offset_at_or_past_the_end_gets_an_empty_page_saying_where(
    client: Client, store: ItemStore, offset: int
) -> None:
    for n in range(5):
        await store.add(NewItem(name=f"item {n}", quantity=0))

    page = await (await client.get("/items", params={"limit": "2", "offset": str(offset)})).json()

    assert page == {"items": [], "limit": 2, "offset": offset}


async def test_a_short_page_still_reports_the_limit_asked_for(client: Client) -> None:
    await client.post("/items", json={"name": "only one"})

    page = await (await client.get("/items", params={"limit": "5"})).json()

    assert (len(page["items"]), page["limit"]) == (1, 5)


async def test_a_name_is_stored_verbatim_whatever_it_holds(client: Client) -> None:
    name = 'Robert\'); -- <b>\\ "quoted" ☕ {braces} %s'

    created = await (await client.post("/items", json={"name": name})).json()

    assert (await (await client.get(f"/items/{created['id']}")).json())["name"] == name


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b'{"name": ', "malformed_json", id="malformed-json"),
        pytest.param(b'{"name": "\xff"}', "malformed_json", id="invalid-utf8"),
        pytest.param(b'["lamp"]', "invalid", id="not-an-object"),
        pytest.param(b'{"quantity": 1}', "invalid", id="missing-name"),
        pytest.param(b'{"name": 12}', "invalid", id="name-not-a-string"),
        pytest.param(b'{"name": "   "}', "invalid", id="blank-name"),
        pytest.param(b'{"name": "x", "quantity": "3"}', "invalid", id="quantity-not-an-integer"),
        pytest.param(b'{"name": "x", "quantity": true}', "invalid", id="quantity-boolean"),
        pytest.param(b'{"name": "x", "quantity": -1}', "invalid", id="quantity-negative"),
        pytest.param(b'{"name": "x", "quantity": 2.5}', "invalid", id="quantity-fraction"),
        pytest.param(b'{"name": "x", "quantity": 1e400}', "invalid", id="quantity-infinite"),
        pytest.param(b'{"name": "x", "colour": "red"}', "invalid", id="unknown-field"),
    ],
)
async def test_bad_bodies_get_400(client: Client, body: bytes, code: str) -> None:
    response = await client.post("/items", data=body, headers=JSON_HEADERS)

    assert response.status == 400
    assert await error_of(response) == code


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        pytest.param({"name": "x"}, ("x", 0), id="shortest-name"),
        pytest.param({"name": "x" * 200}, ("x" * 200, 0), id="longest-name"),
        pytest.param({"name": f" {'x' * 200}\t"}, ("x" * 200, 0), id="longest-name-once-stripped"),
        pytest.param({"name": "x", "quantity": 0}, ("x", 0), id="least-quantity"),
        pytest.param({"name": "x", "quantity": QUANTITY_MAX}, ("x", QUANTITY_MAX), id="most-quantity"),
        pytest.param({"name": "x", "quantity": 3.0}, ("x", 3), id="quantity-written-as-a-float"),
        *(
            pytest.param({"name": f"a{c}b"}, (f"a{c}b", 0), id=f"U+{ord(c):04X}")
            for c in "~\ud7ff\ue000\u202f\u206a"  # just outside the refused ranges (those below)
        ),
    ],
)
async def test_values_at_their_limits_are_accepted_and_stored_as_validated(
    client: Client, body: dict[str, Any], stored: tuple[str, int]
) -> None:
    response = await client.post("/items", json=body)

    assert response.status == 201
    item = await response.json()
    assert (item["name"], item["quantity"]) == stored
    assert await (await client.get(f"/items/{item['id']}")).json() == item


@pytest.mark.parametrize("quantity", ["9" * 5000, "-" + "9" * 5000, str(2**63)], ids=["huge", "huge-negative", "2**63"])
async def test_a_quantity_of_any_length_gets_the_fields_range(client: Client, store: ItemStore, quantity: str) -> None:
    body = b'{"name": "x", "quantity": ' + quantity.encode() + b"}"

    response = await client.post("/items", data=body, headers=JSON_HEADERS)

    assert response.status == 400
    assert (await response.json())["error"]["message"] == f"'quantity' must be from 0 to {QUANTITY_MAX}"
    assert await store.list(limit=1, offset=0) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "x" * 201}, id="name-one-too-long"),
        pytest.param({"name": "x", "quantity": QUANTITY_MAX + 1}, id="quantity-one-too-many"),
        pytest.param({"name": "x", "quantity": 2**63}, id="quantity-past-64-bits"),
        *(
            pytest.param({"name": f"a{c}b"}, id=f"U+{ord(c):04X}")
            for c in "\x1f\x7f\x9f\udfff\u202a\u2066\u2069"  # the first or the last of each refused range
        ),
    ],
)
async def test_values_past_their_limits_get_400_and_store_nothing(
    client: Client, store: ItemStore, body: dict[str, Any]
) -> None:
    response = await client.post("/items", json=body)

    assert response.status == 400
    assert await error_of(response) == "invalid"
    assert await store.list(limit=1, offset=0) == []


@pytest.mark.parametrize(
    "name",
    ["Café\u00a0Crème", "山田\u3000太郎", "👩\u200d💻 team", "שלום world", "e\u0301tude", "tab\u00adbed"],
)
async def test_names_people_write_are_kept_as_sent(client: Client, name: str) -> None:
    response = await client.post("/items", json={"name": name})

    assert response.status == 201
    assert (await response.json())["name"] == name


@pytest.mark.parametrize(
    ("body", "said"),
    [
        pytest.param(b'{"name": "a\\u0000b"}', "U+0000 (a control character), found at character 2", id="nul"),
        pytest.param(b'{"name": "a\\u0085b"}', "U+0085 (a control character), found at character 2", id="c1"),
        pytest.param(b'{"name": "\\ud800"}', "U+D800 (a lone surrogate), found at character 1", id="surrogate"),
        pytest.param(b'{"name": "x\\u202ey"}', "U+202E (a bidirectional override), found at character 2", id="bidi"),
    ],
)
async def test_unsafe_characters_in_a_name_are_refused_saying_which_and_where(
    client: Client, body: bytes, said: str
) -> None:
    response = await client.post("/items", data=body, headers=JSON_HEADERS)

    assert response.status == 400
    assert said in (await response.json())["error"]["message"]


async def test_deeply_nested_body_gets_400(client: Client) -> None:
    response = await client.post("/items", data=b"[" * 20_000 + b"]" * 20_000, headers=JSON_HEADERS)

    assert response.status == 400  # too deep to parse on some Pythons, parsed but not an object on others
    assert await error_of(response) in {"malformed_json", "invalid"}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_not_in_its_content_encoding_gets_400(client: Client, encoding: str) -> None:
    headers = {**JSON_HEADERS, "Content-Encoding": encoding}

    response = await client.post("/items", data=b'{"name": "not compressed"}', headers=headers)

    assert response.status == 400
    assert await error_of(response) == "malformed_body"


async def test_wrong_content_type_gets_415(client: Client) -> None:
    response = await client.post("/items", data="name=lamp", headers={"Content-Type": "text/plain"})

    assert response.status == 415
    assert await error_of(response) == "unsupported_media_type"


async def test_oversized_body_gets_413(client_with: ClientFactory) -> None:
    client = await client_with(max_body_bytes=1024)

    response = await client.post("/items", json={"name": "x" * 2000})

    assert response.status == 413
    assert await error_of(response) == "too_large"


async def send_slowly(client: Client, start: bytes) -> bytes:
    """Send the start of a request on a raw connection, and nothing more; all the server answers until it closes.

    No timeout of its own: the test's ends a wait for a close that never comes.
    """
    reader, writer = await asyncio.open_connection(client.host, client.port)
    answer = b""
    try:
        writer.write(start)
        while chunk := await reader.read(65536):
            answer += chunk
    except ConnectionResetError:  # closed with our bytes unread: a reset, and a close all the same
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()
    return answer


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closed(
    client_with: ClientFactory,
) -> None:
    client = await client_with(body_timeout=0.01)
    headers = "POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"

    answer = await send_slowly(client, headers.encode() + b'{"name": ')

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"\r\nContent-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == "body_timeout"


async def test_headers_that_do_not_arrive_in_time_get_the_connection_closed(client_with: ClientFactory) -> None:
    client = await client_with(keepalive_timeout=0.1)  # 0.01 s could fire before the connection's handler started

    assert await send_slowly(client, b"GET /health HTTP/1.1\r\nHost: test\r\n") == b""


@pytest.mark.parametrize("path", ["/items/999999", "/items/abc", "/items/0", "/items/99999999999999999999999"])
async def test_unknown_ids_get_404(client: Client, path: str) -> None:
    response = await client.get(path)

    assert response.status == 404
    assert await error_of(response) == "not_found"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/items/{}"), ("DELETE", "/items/{}"), ("GET", "/items/{}/fingerprint")]
)
@pytest.mark.parametrize("item_id", ["0", "-1", str(ID_MAX), str(ID_MAX + 1)])
async def test_ids_at_and_past_the_limits_get_404(client: Client, method: str, path: str, item_id: str) -> None:
    response = await client.request(method, path.format(item_id))

    assert response.status == 404
    assert await error_of(response) == "not_found"


@pytest.mark.parametrize(
    ("query", "reported"),
    [
        ({"limit": "1"}, (1, 0)),
        ({"limit": "100"}, (100, 0)),
        ({"offset": "0"}, (20, 0)),
        ({"offset": str(ID_MAX)}, (20, ID_MAX)),
    ],
    ids=["least-limit", "most-limit", "least-offset", "most-offset"],
)
async def test_paging_bounds_are_inclusive(client: Client, query: dict[str, str], reported: tuple[int, int]) -> None:
    response = await client.get("/items", params=query)

    assert response.status == 200
    page = await response.json()
    assert (page["items"], page["limit"], page["offset"]) == ([], *reported)


@pytest.mark.parametrize(
    "query",
    [{"limit": "0"}, {"limit": "-1"}, {"limit": "101"}, {"limit": "x"}, {"offset": "-1"}, {"offset": str(ID_MAX + 1)}],
)
async def test_bad_paging_gets_400(client: Client, query: dict[str, str]) -> None:
    response = await client.get("/items", params=query)

    assert response.status == 400
    assert await error_of(response) == "invalid"


async def test_unknown_route_gets_404(shared_client: Client) -> None:
    response = await shared_client.get("/no/such/path")

    assert response.status == 404
    assert await error_of(response) == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/items", "GET,HEAD,POST"),
        ("POST", "/health", "GET,HEAD"),
        ("DELETE", "/ready", "GET,HEAD"),
        ("PATCH", "/items/1", "DELETE,GET,HEAD"),
        ("DELETE", "/items/1/fingerprint", "GET,HEAD"),
        ("POST", "/upstream", "GET,HEAD"),
        ("POST", "/events", "GET,HEAD"),
    ],
)
async def test_wrong_method_gets_405_with_allow(shared_client: Client, method: str, path: str, allowed: str) -> None:
    response = await shared_client.request(method, path)

    assert response.status == 405
    assert response.headers["Allow"] == allowed
    assert await error_of(response) == "method_not_allowed"


@pytest.mark.parametrize(
    ("headers", "resent"),
    [({}, False), ({"Idempotency-Key": "lamp-1"}, False), ({"Idempotency-Key": "lamp-1"}, True)],
    ids=["plain", "keyed", "replayed"],
)
async def test_a_created_items_location_leads_to_it(client: Client, headers: dict[str, str], resent: bool) -> None:
    *_, created = [await client.post("/items", json={"name": "lamp"}, headers=headers) for _ in range(1 + resent)]

    assert created.status == 201
    assert await (await client.get(created.headers["Location"])).json() == await created.json()


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/ready", {}),
        ("POST", "/items", {"json": {"name": "lamp"}}),
        ("POST", "/items", {"json": {"name": "lamp"}, "headers": {"Idempotency-Key": "lamp-1"}}),
        ("GET", "/items", {}),
        ("GET", "/items/1", {}),
        ("DELETE", "/items/1", {}),
        ("GET", "/items/1/fingerprint", {}),
    ],
    ids=["ready", "create", "create-keyed", "list", "get", "delete", "fingerprint"],
)
async def test_every_503_says_when_to_retry(
    client: Client, store: ItemStore, monkeypatch: pytest.MonkeyPatch, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    async def unavailable(*args: object) -> None:
        raise StoreUnavailable("the store went away")

    for call in ("ping", "add", "add_once", "list", "get", "delete"):
        monkeypatch.setattr(store, call, unavailable)

    response = await client.request(method, path, **kwargs)

    assert (response.status, response.headers.get("Retry-After")) == (503, "1")
    assert await error_of(response) == "unavailable"


@pytest.mark.parametrize(
    ("requests", "status", "code"),
    [
        ([("GET", "/events", {})], 400, "websocket_required"),
        ([("GET", "/events", {"params": {"after": "-1"}, "headers": WEBSOCKET_HANDSHAKE})], 400, "invalid"),
        ([("GET", "/events", {"params": {"after": str(ID_MAX + 1)}, "headers": WEBSOCKET_HANDSHAKE})], 400, "invalid"),
        (
            [("POST", "/items", {"json": {"name": name}, "headers": {"Idempotency-Key": "k"}}) for name in ("a", "b")],
            422,
            "idempotency_key_reused",
        ),
        ([("GET", "/upstream", {})], 504, "upstream_timeout"),
    ],
    ids=["websocket-required", "after-negative", "after-past-the-largest-id", "key-reused", "upstream-timeout"],
)
async def test_every_error_is_json(
    client_with: ClientFactory, upstream: TestServer, requests: list[Request], status: int, code: str
) -> None:
    """The errors other tests check the status of: each a JSON body, said so in its Content-Type."""
    client = await client_with(upstream_url=str(upstream.make_url("/slow")), upstream_timeout=0.05)  # never answers

    responses = [await client.request(method, path, **kwargs) for method, path, kwargs in requests]

    assert responses[-1].status == status
    assert await error_of(responses[-1]) == code


async def test_resuming_after_0_sends_every_kept_event_first(
    client: Client, store: ItemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Event ids only grow (a store's sequence, which no test's cleanup resets): after the suite's own thousands of
    # writes, 0 may be further back than the events kept (a 410). Keep them all: this test is about after=0 itself.
    monkeypatch.setattr(handlers, "EVENT_RETENTION", 2**62)
    await client.post("/items", json={"name": "before"})
    hub, last = client.app[HUB], await store.last_event_id()
    await until(lambda: hub.head == last)  # read by the hub: it can come only from the store, not as a live event

    async with client.ws_connect("/events", params={"after": "0"}) as ws:
        await client.post("/items", json={"name": "live"})

        assert (await ws.receive_json())["item"]["name"] == "before"
        assert (await ws.receive_json())["item"]["name"] == "live"


async def test_ready_reports_the_store_answering(shared_client: Client) -> None:
    response = await shared_client.get("/ready")

    assert (response.status, await response.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/error", 502, "upstream_error"),
        ("/missing", 502, "upstream_error"),  # an upstream's 4xx is its failure, never relayed as a success
        ("/garbage", 502, "upstream_error"),
        ("/reset", 502, "upstream_error"),
    ],
)
async def test_upstream_failures_get_json_5xx(
    client_with: ClientFactory, upstream: TestServer, path: str, status: int, code: str
) -> None:
    client = await client_with(upstream_url=str(upstream.make_url(path)))

    response = await client.get("/upstream")

    assert response.status == status
    assert await error_of(response) == code


@pytest.mark.parametrize("path", ["/big", "/big-chunked"], ids=["content-length", "chunked"])
async def test_an_upstream_answer_over_its_limit_gets_502_and_one_at_it_is_relayed(
    client_with: ClientFactory, upstream: TestServer, path: str
) -> None:
    url = str(upstream.make_url(path))
    over = await client_with(upstream_url=url, upstream_max_bytes=len(BIG_BODY) - 1)
    at = await client_with(upstream_url=url, upstream_max_bytes=len(BIG_BODY))

    refused = await over.get("/upstream")
    relayed = await at.get("/upstream")

    assert refused.status == 502
    message = f"upstream answered over {len(BIG_BODY) - 1} bytes (UPSTREAM_MAX_BYTES)"
    assert await refused.json() == {"error": {"code": "upstream_error", "message": message}}
    assert relayed.status == 200
    assert (await relayed.json())["upstream"]["status"] == "ok"


async def test_an_upstream_answer_announced_over_its_limit_is_refused_before_its_body_comes(
    client_with: ClientFactory, upstream: TestServer
) -> None:
    client = await client_with(upstream_url=str(upstream.make_url("/big-stalled")), upstream_max_bytes=1024)

    response = await client.get("/upstream")  # the body never comes: reading it would end in a 504

    assert response.status == 502
    assert (await response.json())["error"]["message"] == "upstream answered over 1024 bytes (UPSTREAM_MAX_BYTES)"


async def test_the_service_as_its_own_upstream_relays_its_health_as_the_readme_says(
    settings: Settings, store: ItemStore, unused_tcp_port: int, aiohttp_client: AiohttpClient
) -> None:
    own = dataclasses.replace(settings, upstream_url=f"http://127.0.0.1:{unused_tcp_port}/health")
    client = await aiohttp_client(create_app(own, store=store), server_kwargs={"port": unused_tcp_port})

    response = await client.get("/upstream")

    assert (response.status, await response.json()) == (200, {"upstream": {"status": "ok"}})


async def test_upstream_status_is_relayed(client: Client) -> None:
    response = await client.get("/upstream")

    assert await response.json() == {"upstream": {"status": "ok", "version": "1.2.3"}}


async def test_any_handler_gets_json_errors_from_the_route_table(
    mocker: MockerFixture, client_with: ClientFactory
) -> None:
    mocker.patch.object(handlers, "health", side_effect=ValidationError("raised by a handler with no error handling"))
    client = await client_with()  # the app is built after the patch: its route table wraps the bare mock

    response = await client.get("/health")

    assert response.status == 400
    assert await error_of(response) == "invalid"


async def test_a_new_subscriber_gets_new_events_only_not_the_history(
    app: web.Application, store: ItemStore, aiohttp_client: AiohttpClient
) -> None:
    await store.add(NewItem(name="before the service started", quantity=1))
    client = await aiohttp_client(app)

    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})
        await ws.receive_json()  # subscribed
        await client.post("/items", json={"name": "new"})

        assert (await ws.receive_json())["item"]["name"] == "new"


async def test_resuming_from_before_the_kept_events_gets_410(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "EVENT_RETENTION", 1)  # keep only the newest event id
    async with client.ws_connect("/events") as ws:
        await ws.send_json({"type": "ping"})
        await ws.receive_json(timeout=2)  # subscribed
        for name in ("older", "newest"):
            await client.post("/items", json={"name": name})
        older, newest = [await ws.receive_json(timeout=2) for _ in range(2)]

    async with client.ws_connect(f"/events?after={older['id']}") as ws:  # the newest is kept: it comes
        assert (await ws.receive_json(timeout=2))["id"] == newest["id"]
    response = await client.get(f"/events?after={older['id'] - 1}", headers=WEBSOCKET_HANDSHAKE)
    assert response.status == 410
    assert await error_of(response) == "events_expired"


@pytest.mark.parametrize("past", ["the-next-id", "the-largest-id"])
async def test_resuming_after_an_id_no_event_has_yet_gets_410(client: Client, store: ItemStore, past: str) -> None:
    await client.post("/items", json={"name": "newest"})
    newest = await store.last_event_id()

    async with client.ws_connect(f"/events?after={newest}") as ws:  # nothing missed: accepted
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=2) == {"type": "pong"}
    after = newest + 1 if past == "the-next-id" else ID_MAX  # a valid id (ID_MAX + 1 is a 400), just not one yet
    response = await client.get(f"/events?after={after}", headers=WEBSOCKET_HANDSHAKE)
    assert response.status == 410
    assert await error_of(response) == "events_unknown"


@pytest.mark.heavy  # 11,000 writes
@pytest.mark.timeout(300)  # one at a time, traced for coverage in debug mode on a busy runner
async def test_the_store_keeps_the_newest_events_and_prunes_older_ones(store: ItemStore) -> None:
    for n in range(EVENT_RETENTION + EVENT_PRUNE_EVERY):
        await store.add(NewItem(name=f"item {n}", quantity=0))

    newest = await store.last_event_id()
    [oldest] = await store.events_after(0, 1)
    assert newest - EVENT_RETENTION - EVENT_PRUNE_EVERY < oldest.id <= newest - EVENT_RETENTION + 1
