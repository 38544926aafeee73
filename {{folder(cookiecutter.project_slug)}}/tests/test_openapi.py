"""The OpenAPI document: valid OpenAPI 3.1, every route in it, and its schemas in step with the handlers' checks.

The handlers validate by hand (items.py) and the document is declared
beside them (schemas.py, `@documented`): these tests are what keeps the
two saying the same thing, value by value.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import example, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from {{ cookiecutter.package_name }} import handlers
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.items import (
    ID_MAX,
    UNSAFE_KINDS,
    ItemStore,
    NewItem,
    ValidationError,
    parse_idempotency_key,
    parse_new_item,
    parse_page,
)
from {{ cookiecutter.package_name }}.openapi import OPERATIONS, document
from {{ cookiecutter.package_name }}.schemas import COMPONENTS, IDEMPOTENCY_KEY, WHITESPACE, Schema
from {{ cookiecutter.package_name }}.settings import Settings

from .support.clients import WEBSOCKET_HANDSHAKE, Client
from .support.service_process import running_service

SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")  # what it leaves out, and why
SCHEMATHESIS_EXAMPLES = 100  # per operation in its fuzzing phase, and stateful scenarios; its coverage phase takes all
# Characters a name check cares about, and a few it does not: Hypothesis draws from these far more often than
# from the whole of Unicode, so every rule's edge comes up in a few examples.
EDGES = WHITESPACE + "".join(UNSAFE_KINDS)[::7] + "\x1f\x7f\x9f\ud800\udfff\u202a\u202e\u2066\u2069" + "aZ9é山👩\u200d"
NAMES = st.text(alphabet=st.sampled_from(EDGES), max_size=12) | st.text(max_size=210)


def accepts(schema: Schema, value: object) -> bool:
    """Whether `value` is valid under `schema`, whose references point into the document's components."""
    return Draft202012Validator({**schema, "components": {"schemas": COMPONENTS}}).is_valid(value)


def takes(parse: Any, *arguments: object) -> bool:
    """Whether the handlers' own check `parse` takes `arguments` without a ValidationError."""
    try:
        parse(*arguments)
    except ValidationError:
        return False
    return True


async def test_the_served_document_is_valid_openapi_3_1(shared_client: Client) -> None:
    response = await shared_client.get("/openapi.json")

    assert response.status == 200
    served = await response.json()
    await asyncio.to_thread(validate, served)  # raises, saying what is wrong; it reads files, so not on the loop
    assert served["openapi"].startswith("3.1")


async def test_every_route_is_in_the_document() -> None:
    app = create_app(Settings())
    routes = {
        (resource.canonical, route.method.lower())
        for resource in app.router.resources()
        for route in resource
        if route.method not in {"HEAD", "*"}
    }

    paths: dict[str, dict[str, object]] = document(app)["paths"]  # type: ignore[assignment]
    documented = {(path, method) for path, operations in paths.items() for method in operations}

    assert routes == documented


async def test_a_route_whose_handler_declares_no_operation_stops_the_document() -> None:
    async def undeclared(request: web.Request) -> web.Response:
        return web.Response()

    app = create_app(Settings())
    app.router.add_get("/undeclared", undeclared)

    with pytest.raises(LookupError, match=r"GET /undeclared: .*undeclared is not @documented"):
        document(app)


def filled(path: str, item_id: int) -> str:
    return path.replace("{item_id}", str(item_id))


async def test_every_documented_operation_answers_as_documented(client: Client, store: ItemStore) -> None:
    """A sensible request to each operation gets a status the document lists, with a body and headers as it says."""
    operations: dict[str, dict[str, Any]] = document(client.app)["paths"]  # type: ignore[assignment]
    answered = []
    for path, methods in operations.items():
        for method, operation in sorted(methods.items(), key=lambda pair: pair[0] == "delete"):  # delete last
            item = await store.add(NewItem("lamp", 1))
            kwargs: dict[str, Any] = {"json": {"name": "desk"}} if "requestBody" in operation else {}
            if path == "/events":
                kwargs["headers"] = WEBSOCKET_HANDSHAKE
            response = await client.request(method.upper(), filled(path, item.id), **kwargs)
            answer = operation["responses"].get(str(response.status))
            assert answer is not None, f"{method.upper()} {path} answered {response.status}, not in the document"
            for name, header in answer.get("headers", {}).items():
                assert not header["required"] or name in response.headers, f"{method.upper()} {path}: no {name}"
            if "content" in answer and response.status != 101:
                body = json.loads(await response.read())
                assert accepts(answer["content"]["application/json"]["schema"], body), (path, method, body)
            response.close()
            answered.append((path, method, response.status))

    assert all(status < 300 for _, _, status in answered), answered


def test_the_whitespace_the_schemas_name_is_what_python_strips() -> None:
    assert set(WHITESPACE) == {character for character in map(chr, range(sys.maxunicode + 1)) if character.isspace()}


@given(name=NAMES)
@example(name="")
@example(name=" \u3000 ")
@example(name="x" * 200)
@example(name="x" * 201)
@example(name=" " + "x" * 200 + "\t")
@example(name="a\tb")
@example(name="\x1fa\x85")
@example(name="a\u202eb")
@example(name="a\u3000b")
def test_a_name_the_schema_accepts_is_one_the_service_takes(name: str) -> None:
    """The same verdict, but for lone surrogates: the schema cannot name them, the service refuses them."""
    surrogate = any(0xD800 <= ord(character) <= 0xDFFF for character in name)
    accepted = accepts(COMPONENTS["NewItem"], {"name": name}) and not surrogate
    assert accepted == takes(parse_new_item, {"name": name})


@given(
    body=st.dictionaries(
        st.sampled_from(["name", "quantity", "colour"]),
        st.none()
        | st.booleans()
        | st.integers(-3, 2**32)
        | st.floats(allow_nan=False)
        | st.sampled_from(["desk", " ", "3"])
        | st.lists(st.none()),
    )
    | st.lists(st.none())
    | st.text(max_size=3)
)
@example(body={"name": "x", "quantity": 3.0})
@example(body={"name": "x", "quantity": 2.5})
@example(body={"name": "x", "quantity": 2**31})
@example(body={"name": "x", "quantity": True})
@example(body={"name": "x", "colour": "red"})
@example(body={"quantity": 1})
def test_a_body_the_schema_accepts_is_one_the_service_takes(body: object) -> None:
    assert accepts(COMPONENTS["NewItem"], body) == takes(parse_new_item, body)


@given(key=st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=260))
@example(key="")
@example(key="~" * 255)
@example(key="~" * 256)
@example(key="a b")
def test_an_idempotency_key_the_schema_accepts_is_one_the_service_takes(key: str) -> None:
    assert accepts(IDEMPOTENCY_KEY, key) == takes(parse_idempotency_key, [key])


@given(name=st.sampled_from(["limit", "offset"]), value=st.integers(-2, 200) | st.integers(ID_MAX - 2, ID_MAX + 2))
def test_a_paging_value_the_document_accepts_is_one_the_service_takes(name: str, value: int) -> None:
    [parameter] = [parameter for parameter in OPERATIONS[handlers.list_items].parameters if parameter.name == name]
    assert accepts(parameter.schema, value) == takes(parse_page, {name: str(value)})


@pytest.mark.heavy
@pytest.mark.timeout(600)
@pytest.mark.skipif(sys.platform == "win32", reason="stops the service with SIGTERM")
async def test_schemathesis_finds_nothing_against_the_running_service(
    unused_tcp_port: int, service_env: dict[str, str], upstream: TestServer, tmp_path: Path
) -> None:
    """Schemathesis, every check and phase (stateful links included), on the document the real service serves.

    A new route is in its run as soon as its handler is @documented. The seed is fixed, so a failure replays.
    """
    env = {**service_env, "UPSTREAM_URL": str(upstream.make_url("/status")), "ACCESS_LOG": "off"}
    async with running_service(unused_tcp_port, env) as service:
        run = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(SCHEMATHESIS_CONFIG),
            "run",
            f"{service.url}/openapi.json",
            "--max-examples",
            str(SCHEMATHESIS_EXAMPLES),
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-color",
            cwd=tmp_path,  # where it writes its replay files and examples
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        said, _ = await run.communicate()
        stderr = await service.stop()

    assert run.returncode == 0, said.decode()[-6000:]
    assert "Traceback" not in stderr, stderr
