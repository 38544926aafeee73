"""P9 - AsyncMock through pytest-mock.

`mocker.patch` on an `async def` gives an AsyncMock: set `return_value`,
a `side_effect` sequence or an exception, then check it with
`assert_awaited_once_with`. Patch where the name is looked up (here the
handlers module), and mock only what is outside the service, never the
service's own code or its storage.
"""

from __future__ import annotations

from pytest_mock import MockerFixture

from {{ cookiecutter.package_name }} import handlers
from {{ cookiecutter.package_name }}.keys import UPSTREAM
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.upstream import UpstreamError, UpstreamTimeout

from .support.clients import Client


async def test_upstream_answer_is_passed_through(mocker: MockerFixture, client: Client, settings: Settings) -> None:
    fetch = mocker.patch.object(handlers, "fetch_status", return_value={"status": "mocked"})

    response = await client.get("/upstream")

    assert await response.json() == {"upstream": {"status": "mocked"}}
    fetch.assert_awaited_once_with(
        client.app[UPSTREAM],
        settings.upstream_url,
        max_bytes=settings.upstream_max_bytes,
        request_id=response.headers["X-Request-ID"],
    )


async def test_each_upstream_failure_maps_to_its_status(mocker: MockerFixture, client: Client) -> None:
    mocker.patch.object(
        handlers, "fetch_status", side_effect=[{"status": "ok"}, UpstreamTimeout("slow"), UpstreamError("down")]
    )

    statuses = [(await client.get("/upstream")).status for _ in range(3)]

    assert statuses == [200, 504, 502]


async def test_exception_side_effect_becomes_a_502(mocker: MockerFixture, client: Client) -> None:
    fetch = mocker.patch.object(handlers, "fetch_status", side_effect=UpstreamError("connection refused"))

    response = await client.get("/upstream")

    assert (response.status, (await response.json())["error"]["message"]) == (502, "connection refused")
    fetch.assert_awaited_once()
