"""Hints: a word beside failures whose cause the message alone does not make plain."""

from __future__ import annotations

import pytest

HINTS = {
    "Changing state of started or joined application": (
        "An aiohttp Application can be started only once, so one app cannot go to `aiohttp_client(app)` in "
        "several tests. Share a started client instead (a session-scoped `TestClient(TestServer(app))`, like "
        "`shared_client` in conftest.py and tests/test_p04_shared_fixtures.py), or build the app per test."
    ),
}


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    if call.excinfo is None:
        return
    text = str(call.excinfo.value)
    for needle, hint in HINTS.items():
        if needle in text:
            item.add_report_section(call.when, "hint", hint)
