"""A baked project installs into a fresh directory exactly as its README's Getting started says, with pip or uv.

The matrix runs baked suites from this environment; here the README's own lines
run in a copy of the bake with nothing of this environment but its Python (and
uv): a dependency the pyproject forgets cannot hide behind one the template's
tests happen to have installed, and a README line that no longer works fails.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from .baking import PYTHONS, UV, bake, package_of, run

pytestmark = [pytest.mark.slow, pytest.mark.every_python]

# The default answers, and the postgresql one on the other loop: both loops are installed somewhere.
CASES = {"default": {}, "postgresql": {"database": "postgresql", "event_loop": "asyncio"}}
TOOLS = {"pip": "python3 -m venv", "uv": "uv sync"}
HEAVY_HINT = "`python -m pytest --heavy` runs the full proof"
# This machine's way to the package index (certificates, proxies, mirrors) reaches pip and uv as it does here; no
# other UV_ setting does (nox's UV_PROJECT_ENVIRONMENT would make `uv sync` rewrite the session's environment).
INDEX_SETTINGS = re.compile(
    r"PIP_\w+|SSL_CERT_\w+|(HTTPS?|NO)_PROXY|UV_(DEFAULT_INDEX|INDEX|INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|NATIVE_TLS)",
    re.IGNORECASE,
)


def getting_started(readme: str) -> dict[str, list[str]]:
    """The README's Getting started blocks, by the tool their first line uses: tool -> command lines."""
    section = readme.split("\n## Getting started\n", 1)[1].split("\n## ", 1)[0]
    blocks = [block.strip().splitlines() for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL)]
    return {tool: lines for tool, start in TOOLS.items() for lines in blocks if lines[0].startswith(start)}


def test_readme_names_the_supported_pythons(cookies) -> None:  # type: ignore[no-untyped-def]
    readme = (bake(cookies, {}) / "README.md").read_text(encoding="utf-8")

    assert f"(Python {PYTHONS[0]} to {PYTHONS[-1]}; " in readme
    assert sorted(getting_started(readme)) == sorted(TOOLS)


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("case", CASES)
def test_readme_lines_install_then_pass_the_suite_in_a_fresh_directory(
    cookies,  # type: ignore[no-untyped-def]
    case: str,
    tool: str,
    tmp_path: Path,
) -> None:
    project = shutil.copytree(bake(cookies, CASES[case]), tmp_path / "project")
    lines = getting_started((project / "README.md").read_text(encoding="utf-8"))[tool]
    serve = [line for line in lines if f" -m {package_of(project)} " in line]
    # `python3` is this interpreter; uv is told to use it and never to download one.
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python3").symlink_to(os.path.realpath(sys.executable))
    (tools / "uv").symlink_to(shutil.which(UV) or UV)
    index = {name: value for name, value in os.environ.items() if INDEX_SETTINGS.fullmatch(name)}
    env = {**index, "PATH": f"{tools}{os.pathsep}/usr/bin:/bin", "UV_PYTHON": str(tools / "python3"), "CI": "true"}

    # Only PATH, HOME and the index settings from here on: nothing else of this environment (PYTHONPATH, a
    # virtualenv) leaks in. CI is set, so a missing database fails. The serving line runs until stopped:
    # tests/test_process.py in the bake proves it.
    assert len(serve) == 1, lines
    script = "\n".join(["set -eu", *(line for line in lines if line not in serve)])
    done = run(project, "bash", "-c", script, clean_env=True, env={**env, "UV_PYTHON_DOWNLOADS": "never"}, timeout=900)

    assert re.search(r"\b\d+ passed, \d+ deselected in ", done.stdout), done.stdout
    assert "skipped" not in done.stdout
    assert HEAVY_HINT in done.stdout
    python = project / ".venv" / "bin" / "python"
    version = run(project, python, "-c", "import sys; print(sys.version_info[:2])", clean_env=True).stdout
    assert version.strip() == str(sys.version_info[:2])
