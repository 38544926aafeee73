"""P12 - the event loop choice: tests run on the loop the service runs on.

The loop comes from pytest-asyncio's `pytest_asyncio_loop_factories` hook in
conftest.py, fed by the service's own `loop.new_event_loop`; no deprecated
event-loop policy is involved.
{%- if cookiecutter.event_loop == "uvloop" %} `pytest --all-loops` runs every async test twice,
on uvloop and on the standard asyncio loop (test ids end in [uvloop] and
[asyncio]).
{%- endif %}
"""

from __future__ import annotations

import asyncio
{%- if cookiecutter.event_loop == "uvloop" %}
import sys

import pytest

if sys.platform == "win32":

    async def test_tests_fall_back_to_the_standard_loop_on_windows() -> None:
        """uvloop has no Windows build: there the service and the tests run on asyncio."""
        assert isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)

else:
    import uvloop

    async def test_tests_run_on_uvloop(request: pytest.FixtureRequest) -> None:
        on_asyncio_leg = request.node.name.endswith("[asyncio]")  # only with --all-loops

        expected = asyncio.BaseEventLoop if on_asyncio_leg else uvloop.Loop
        assert isinstance(asyncio.get_running_loop(), expected)
{%- else %}


async def test_tests_run_on_the_standard_asyncio_loop() -> None:
    assert isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)
{%- endif %}
