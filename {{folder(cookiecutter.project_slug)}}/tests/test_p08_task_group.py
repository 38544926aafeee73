"""P8 - asyncio.TaskGroup and ExceptionGroup.

A TaskGroup waits for all its tasks; when one fails it cancels the rest and
raises an ExceptionGroup holding every failure. Match on it with
pytest.raises(ExceptionGroup) and `group.subgroup`, or with `except*`.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from {{ cookiecutter.package_name }}.items import ItemStore, NewItem
from {{ cookiecutter.package_name }}.upstream import UpstreamError, fetch_status


async def test_task_group_stores_every_item(store: ItemStore) -> None:
    async with asyncio.TaskGroup() as group:
        for name in ("red", "green", "blue"):
            group.create_task(store.add(NewItem(name=name, quantity=1)))

    assert sorted(item.name for item in await store.list(limit=10, offset=0)) == ["blue", "green", "red"]


async def test_failed_upstream_call_surfaces_in_an_exception_group(upstream: TestServer) -> None:
    async def fetch_both(session: aiohttp.ClientSession) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(fetch_status(session, str(upstream.make_url("/status"))))
            group.create_task(fetch_status(session, str(upstream.make_url("/error"))))

    async with aiohttp.ClientSession() as session:
        with pytest.raises(ExceptionGroup) as caught:
            await fetch_both(session)

    assert caught.value.subgroup(UpstreamError) is not None


async def test_except_star_handles_only_the_matching_failures(upstream: TestServer) -> None:
    handled: list[BaseException] = []
    async with aiohttp.ClientSession() as session:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(fetch_status(session, str(upstream.make_url("/list"))))
        except* UpstreamError as group_error:
            handled.extend(group_error.exceptions)

    assert [str(error) for error in handled] == ["upstream did not send a JSON object"]
