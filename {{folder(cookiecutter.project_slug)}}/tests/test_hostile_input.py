"""Hostile input: whatever a client sends, the answer is a success or a 4xx JSON error.

Hypothesis generates the bodies, paths, queries and websocket frames; any
500 fails the test through the `fail_on_server_errors` fixture as well as
through the status checks here.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support.clients import JSON_HEADERS, Client

# One test runs all its examples: 100 each with --heavy, which traced for coverage on a busy runner can take
# longer than the usual 10 s.
pytestmark = pytest.mark.timeout(60)
# The client fixture is built once per test and shared by its examples: the app keeps no per-request state.
# How many examples each test gets is the profile's (tests/support/heavy.py): a few by default, 100 with --heavy.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# A JSON string carries any code point, a lone surrogate too (json.dumps sends "\ud800"); URLs and websocket
# text frames travel as UTF-8, which has no surrogates.
ANY_CHARACTER = st.characters()
UTF8_CHARACTER = st.characters(exclude_categories=["Cs"])
TEXT = st.text(ANY_CHARACTER)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner) | st.dictionaries(TEXT, inner), max_leaves=20)
NAME_LIKE = st.text(ANY_CHARACTER, max_size=300)
ITEM_LIKE = st.fixed_dictionaries(
    {"name": NAME_LIKE | JSON}, optional={"quantity": st.integers() | JSON, "extra": JSON}
)


@FUZZ
@given(body=JSON | ITEM_LIKE)
async def test_any_json_body_is_created_or_refused_with_400(client: Client, body: object) -> None:
    response = await client.post("/items", data=json.dumps(body), headers=JSON_HEADERS)

    assert response.status in {201, 400}
    assert response.content_type == "application/json"


@FUZZ
@given(raw=st.binary(max_size=2048), content_type=st.sampled_from(["application/json", "text/plain", ""]))
async def test_any_bytes_get_a_json_answer(client: Client, raw: bytes, content_type: str) -> None:
    response = await client.post("/items", data=raw, headers={"Content-Type": content_type})

    assert response.status in {201, 400, 415}
    assert response.content_type == "application/json"


@FUZZ
@given(segment=st.text(UTF8_CHARACTER, min_size=1))
async def test_any_item_path_gets_200_or_404(client: Client, segment: str) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/items/{quote(segment, safe='')}")

        assert response.status in {200, 204, 404}


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["limit", "offset", "other"]), st.text(UTF8_CHARACTER)))
async def test_any_paging_query_gets_200_or_400(client: Client, query: dict[str, str]) -> None:
    response = await client.get("/items", params=query)

    assert response.status in {200, 400}
    assert response.content_type == "application/json"


@FUZZ
@given(frames=st.lists(st.text(UTF8_CHARACTER, max_size=5000) | st.binary(max_size=100), min_size=1, max_size=5))
async def test_any_websocket_frames_get_one_json_reply_each(client: Client, frames: list[str | bytes]) -> None:
    async with client.ws_connect("/events") as ws:
        for frame in frames:
            await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
            reply = await ws.receive_json(timeout=2)

            assert reply["type"] in {"pong", "error"}


async def test_huge_and_deep_bodies_are_refused_and_the_service_stays_up(client: Client) -> None:
    bodies = [b'{"name": "' + b"x" * 100_000 + b'"}', b"[" * 60_000 + b"]" * 60_000, b'{"name": "' + b"y" * 500 + b'"}']

    statuses = [(await client.post("/items", data=body, headers=JSON_HEADERS)).status for body in bodies]

    assert statuses == [413, 413, 400]
    assert (await client.get("/health")).status == 200
