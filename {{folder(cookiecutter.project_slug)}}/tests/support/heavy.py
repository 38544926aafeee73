"""The `--heavy` option: slow proof is opt-in, so a plain `python -m pytest` takes seconds.

Heavy proof is a test marked `@pytest.mark.heavy` (real server processes,
hundreds of concurrent clients), Hypothesis at its full example counts, and
asyncio's debug mode (every task and future remembers where it was created,
for the reports of a leak or a never-awaited coroutine). A plain run leaves
the marked tests out, says so in one line, gives each Hypothesis test a few
examples and runs the loop without debug mode; `python -m pytest --heavy`
(what CI runs) includes everything. `--hypothesis-profile NAME` still picks
any profile, and `--asyncio-debug` turns debug mode on for any run.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

QUICK_EXAMPLES = 10  # per Hypothesis test in a plain run: catches the obvious, costs little
FULL_EXAMPLES = 100  # under --heavy: Hypothesis' own default

settings.register_profile("quick", max_examples=QUICK_EXAMPLES)
settings.register_profile("heavy", max_examples=FULL_EXAMPLES)

LEFT_OUT = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--heavy",
        action="store_true",
        help="also run the tests marked heavy, and Hypothesis at full example counts (what CI runs)",
    )


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own plugin, which builds on the profile loaded here
def pytest_configure(config: pytest.Config) -> None:
    heavy = config.getoption("--heavy")
    if config.getoption("--hypothesis-profile", default=None) is None:  # a profile asked for by name wins
        settings.load_profile("heavy" if heavy else "quick")
    if heavy:
        config.option.asyncio_debug = True  # as --asyncio-debug, which pytest-asyncio reads when it makes a loop


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --heavy, deselect the tests marked heavy (reported as deselected, not skipped)."""
    if config.getoption("--heavy"):
        return
    heavy = [item for item in items if item.get_closest_marker("heavy")]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if not item.get_closest_marker("heavy")]
    config.stash[LEFT_OUT] = len(heavy)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    left_out = config.stash.get(LEFT_OUT, 0)
    if left_out:
        tests = "test" if left_out == 1 else "tests"
        terminalreporter.write_line(
            f"{left_out} heavy {tests} left out, Hypothesis at {settings().max_examples} examples per test, "
            "no asyncio debug mode: "
            "`python -m pytest --heavy` runs the full proof"
        )
