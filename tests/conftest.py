"""Shared fixtures: one baked project per combination of answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from .baking import COMBINATIONS, ROOT, bake, combination_id

# The longest tests, longest first: sent to xdist's workers before the rest (noxfile.py sends one at a time), they
# leave only short ones to even the workers out at the end (pytest-randomly shuffles the rest, and each group).
LONGEST_FIRST = (
    "test_baked_suite_passes_the_full_proof",  # a minute or more each
    "test_readme_lines_install_then_pass",
    "test_quick_run_writes",
    "test_mypy_strict_finds_nothing",
    "test_pre_commit_mypy_environment",
    "test_mistakes_fail_fast",
    "test_a_planted_json_round_trip",  # the instruction-count gate, twice
)


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


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests named in LONGEST_FIRST first, in that order."""

    def rank(item: pytest.Item) -> int:
        ranks = [index for index, name in enumerate(LONGEST_FIRST) if item.name.startswith(name)]
        return ranks[0] if ranks else len(LONGEST_FIRST)

    items.sort(key=rank)
