"""The HTTP API contract: every endpoint's answers, and a 4xx JSON error for every client mistake.

The pattern these tests follow is P10 (test_p10_http_api.py); this file is
the exhaustive list a change to the API must keep passing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestServer
from pytest_mock import MockerFixture

from {{ cookiecutter.package_name }} import handlers
from {{ cookiecutter.package_name }}.items import (
    EVENT_PRUNE_EVERY,
    EVENT_RETENTION,
    ItemStore,
    NewItem,
    ValidationError,
)

from .support.clients import JSON_HEADERS, Client, ClientFactory
from .support.fake_upstream import BIG_BODY

WEBSOCKET_HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


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
        pytest.param(b'{"name": "x", "colour": "red"}', "invalid", id="unknown-field"),
    ],
)
async def test_bad_bodies_get_400(client: Client, body: bytes, code: str) -> None:
    response = await client.post("/items", data=body, headers=JSON_HEADERS)

    assert response.status == 400
    assert await error_of(response) == code


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
    """Send the start of a request on a raw connection, and nothing more; all the server answers until it closes."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(start)
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closed(
    client_with: ClientFactory,
) -> None:
    client = await client_with(body_timeout=0.01)
    headers = "POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"

    answer = await send_slowly(client, headers.encode() + b'{"name": ')

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["error"]["code"] == "body_timeout"


async def test_headers_that_do_not_arrive_in_time_get_the_connection_closed(client_with: ClientFactory) -> None:
    client = await client_with(keepalive_timeout=0.01)

    assert await send_slowly(client, b"GET /health HTTP/1.1\r\nHost: test\r\n") == b""


@pytest.mark.parametrize("path", ["/items/999999", "/items/abc", "/items/0", "/items/99999999999999999999999"])
async def test_unknown_ids_get_404(client: Client, path: str) -> None:
    response = await client.get(path)

    assert response.status == 404
    assert await error_of(response) == "not_found"


@pytest.mark.parametrize("query", [{"limit": "1"}, {"limit": "100"}, {"offset": "0"}, {"offset": str(2**63 - 1)}])
async def test_paging_bounds_are_inclusive(client: Client, query: dict[str, str]) -> None:
    response = await client.get("/items", params=query)

    assert response.status == 200


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"offset": "-1"}])
async def test_bad_paging_gets_400(client: Client, query: dict[str, str]) -> None:
    response = await client.get("/items", params=query)

    assert response.status == 400
    assert await error_of(response) == "invalid"


async def test_unknown_route_gets_404(shared_client: Client) -> None:
    response = await shared_client.get("/no/such/path")

    assert response.status == 404
    assert await error_of(response) == "not_found"


async def test_wrong_method_gets_405_with_allow(shared_client: Client) -> None:
    response = await shared_client.put("/items")

    assert response.status == 405
    assert response.headers["Allow"] == "GET,HEAD,POST"
    assert await error_of(response) == "method_not_allowed"


async def test_ready_reports_the_store_answering(shared_client: Client) -> None:
    response = await shared_client.get("/ready")

    assert (response.status, await response.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/error", 502, "upstream_error"), ("/garbage", 502, "upstream_error"), ("/reset", 502, "upstream_error")],
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

    response = await client.get("/upstream")  # the body never comes: reading it would end in a 504 after 0.5 s

    assert response.status == 502
    assert (await response.json())["error"]["message"] == "upstream answered over 1024 bytes (UPSTREAM_MAX_BYTES)"


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


@pytest.mark.heavy  # 11,000 writes
@pytest.mark.timeout(300)  # one at a time, traced for coverage in debug mode on a busy runner
async def test_the_store_keeps_the_newest_events_and_prunes_older_ones(store: ItemStore) -> None:
    for n in range(EVENT_RETENTION + EVENT_PRUNE_EVERY):
        await store.add(NewItem(name=f"item {n}", quantity=0))

    newest = await store.last_event_id()
    [oldest] = await store.events_after(0, 1)
    assert newest - EVENT_RETENTION - EVENT_PRUNE_EVERY < oldest.id <= newest - EVENT_RETENTION + 1
