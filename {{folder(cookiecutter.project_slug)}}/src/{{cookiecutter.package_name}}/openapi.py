"""The OpenAPI 3.1 document, served at GET /openapi.json: the route table's paths, each with its handler's operation.

A handler declares its operation where it is defined (`@documented(...)`),
with the shapes of schemas.py; a route whose handler declares none is a
bug that the document refuses to hide (tests/test_openapi.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from aiohttp import web

from .logs import REQUEST_ID_HEADER
from .schemas import COMPONENTS, Schema

HandlerT = TypeVar("HandlerT", bound=Callable[..., object])


@dataclass(frozen=True, slots=True)
class Answer:
    """One status an operation can answer: what it means, its JSON body's schema, headers and links."""

    description: str
    schema: Schema | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # name: what it holds, in every such answer
    sometimes: Mapping[str, str] = field(default_factory=dict)  # the same, for headers only some such answers carry
    links: Mapping[str, Schema] = field(default_factory=dict)  # OpenAPI link objects, by name


@dataclass(frozen=True, slots=True)
class Parameter:
    """A path, query or header parameter."""

    name: str
    where: Literal["path", "query", "header"]
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """What one method on one path takes and answers."""

    summary: str
    answers: Mapping[int, Answer]
    parameters: Sequence[Parameter] = ()
    body: Schema | None = None  # an application/json request body
    description: str | None = None


OPERATIONS: dict[object, Operation] = {}
TITLE = "{{ cookiecutter.project_slug }}"
API_VERSION = "1"  # the API's, not the package's: raise it with a change that breaks a client


def documented(operation: Operation) -> Callable[[HandlerT], HandlerT]:
    """Declare the operation the decorated handler serves, for the document."""

    def declare(handler: HandlerT) -> HandlerT:
        OPERATIONS[handler] = operation
        return handler

    return declare


def document(app: web.Application) -> Schema:
    """The OpenAPI document of `app`'s routes; a LookupError names a handler that declares no operation."""
    paths: dict[str, dict[str, Schema]] = {}
    for resource in app.router.resources():
        for route in resource:
            if route.method in {"HEAD", "*"}:
                continue
            handler = inspect.unwrap(route.handler)
            if handler not in OPERATIONS:
                raise LookupError(f"{route.method} {resource.canonical}: {handler.__qualname__} is not @documented")
            paths.setdefault(resource.canonical, {})[route.method.lower()] = _operation(
                handler.__name__, OPERATIONS[handler]
            )
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": API_VERSION},
        "paths": paths,
        "components": {"schemas": COMPONENTS},
    }


def _operation(operation_id: str, operation: Operation) -> Schema:
    described: Schema = {"operationId": operation_id, "summary": operation.summary}
    if operation.description is not None:
        described["description"] = operation.description
    if operation.parameters:
        described["parameters"] = [
            {
                "name": parameter.name,
                "in": parameter.where,
                "required": parameter.required or parameter.where == "path",
                "description": parameter.description,
                "schema": parameter.schema,
            }
            for parameter in operation.parameters
        ]
    if operation.body is not None:
        described["requestBody"] = {"required": True, "content": {"application/json": {"schema": operation.body}}}
    described["responses"] = {str(status): _answer(answer) for status, answer in operation.answers.items()}
    return described


def _answer(answer: Answer) -> Schema:
    headers: dict[str, str] = {REQUEST_ID_HEADER: "the request's id, as the access log and any error's message give it"}
    headers.update(answer.headers)
    described: Schema = {
        "description": answer.description,
        "headers": {
            **{name: _header(about, required=True) for name, about in headers.items()},
            **{name: _header(about, required=False) for name, about in answer.sometimes.items()},
        },
    }
    if answer.schema is not None:
        described["content"] = {"application/json": {"schema": answer.schema}}
    if answer.links:
        described["links"] = dict(answer.links)
    return described


def _header(description: str, *, required: bool) -> Schema:
    return {"description": description, "required": required, "schema": {"type": "string"}}
