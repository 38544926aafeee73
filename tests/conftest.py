"""Shared fixtures: one baked project per combination of answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from .baking import COMBINATIONS, ROOT, bake, combination_id


def pytest_configure(config: pytest.Config) -> None:
    """Bake from this checkout wherever pytest is started."""
    if config.option.template == ".":
        config.option.template = str(ROOT)


@pytest.fixture(scope="session", params=COMBINATIONS, ids=combination_id)
def answers(request: pytest.FixtureRequest) -> dict[str, str]:
    """Session scope: one combination of choice answers; tests using it run once per combination."""
    return dict(request.param)


@pytest.fixture(scope="session")
def baked(answers: dict[str, str], cookies_session) -> Path:  # type: ignore[no-untyped-def]
    """Session scope: the project baked from `answers` (baking is cheap; checks only read it)."""
    return bake(cookies_session, answers)
