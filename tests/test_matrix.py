"""Every combination of answers bakes a clean project whose own suite passes."""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .baking import CHOICES, bake, distribution_names, package_of, run, run_suite, third_party_imports

UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|%\}|\{#")
PATTERNS = [f"test_p{number:02d}" for number in range(1, 15)]

# Files each answer must bring (the hook's table says what goes; this says what stays).
KEPT = {
    ("database", "sqlite"): ["src/{pkg}/store_sqlite.py", "src/{pkg}/migrations/sqlite/0001_create_items.sql"],
    ("database", "postgresql"): ["src/{pkg}/store_postgresql.py", "compose.yaml"],
    ("database", "none"): ["src/{pkg}/store_memory.py"],
}
# Words no file may contain once an answer has removed what they name.
FORBIDDEN = {
    ("event_loop", "asyncio"): ["uvloop"],
    ("database", "sqlite"): ["asyncpg", "postgres", "store_memory", "memory_fixtures"],
    ("database", "postgresql"): ["sqlite", "store_memory", "memory_fixtures"],
    ("database", "none"): ["database", "sql", "postgres", "asyncpg", "migration", "compose", "rollback", "transaction"],
}
# Production code that knows it is under test (a branch or a helper for tests belongs in tests/).
TEST_SEAMS = re.compile(r"in_transaction|for tests|under test|a test's", re.IGNORECASE)
PATTERN_FILE_MAX_LINES = 80
# The baked CI's test command, less `python -m pytest`: the heavy proof, with branch coverage of src/ of at least 95%.
FULL_PROOF = ("--heavy", "--cov", "--cov-fail-under=95")


def project_files(project: Path) -> list[Path]:
    """Every file of a baked project, tool caches excluded."""
    return [path for path in project.rglob("*") if path.is_file() and "_cache" not in str(path)]


def test_no_unrendered_jinja(baked: Path) -> None:
    leftovers = [
        str(path.relative_to(baked))
        for path in project_files(baked)
        if UNRENDERED.search(str(path.relative_to(baked))) or UNRENDERED.search(path.read_text(encoding="utf-8"))
    ]

    assert leftovers == []


def test_kept_pieces_are_present(baked: Path, answers: dict[str, str]) -> None:
    expected = [path for key, listed in KEPT.items() if answers[key[0]] == key[1] for path in listed]

    missing = [path for path in expected if not (baked / path.format(pkg=package_of(baked))).exists()]

    assert missing == []


def test_removed_pieces_leave_no_trace(baked: Path, answers: dict[str, str]) -> None:
    words = [word for key, listed in FORBIDDEN.items() if answers[key[0]] == key[1] for word in listed]

    traces = [
        f"{path.relative_to(baked)}: {word}"
        for path in project_files(baked)
        if path.name != ".cruft.json"  # the answers, as cruft records them: every question named
        for word in words
        if word in str(path.relative_to(baked)).lower() or word in path.read_text(encoding="utf-8").lower()
    ]

    assert traces == []


def test_one_store_module_in_its_own_dialect(baked: Path, answers: dict[str, str]) -> None:
    stores = sorted(path.name for path in (baked / "src" / package_of(baked)).glob("store*.py"))

    assert stores == [f"store_{'memory' if answers['database'] == 'none' else answers['database']}.py"]


def test_production_code_does_not_know_it_is_under_test(baked: Path) -> None:
    seams = [
        f"{path.relative_to(baked)}:{number}: {line.strip()}"
        for path in (baked / "src").rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if TEST_SEAMS.search(line)
    ]

    assert seams == []


def test_no_test_module_is_named_like_a_source_module(baked: Path) -> None:
    source = {path.stem for path in (baked / "src").rglob("*.py")}
    tests = {path.stem for path in (baked / "tests").rglob("*.py")} - {"__init__", "conftest"}

    assert source & tests == set()


def test_each_pattern_file_is_short_enough_to_learn_from(baked: Path) -> None:
    lengths = {
        path.name: len(path.read_text(encoding="utf-8").splitlines())
        for path in baked.glob("tests/test_p[0-9][0-9]_*.py")
    }

    assert {name: length for name, length in lengths.items() if length >= PATTERN_FILE_MAX_LINES} == {}


def test_no_empty_folders(baked: Path) -> None:
    assert [str(path) for path in baked.rglob("*") if path.is_dir() and not any(path.iterdir())] == []


def test_pyproject_declares_exactly_what_the_code_imports(baked: Path) -> None:
    project = tomllib.loads((baked / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    package = package_of(baked)
    runtime = distribution_names(project["dependencies"])
    dev = distribution_names(project["optional-dependencies"]["dev"])

    assert third_party_imports(baked / "src", {package}) == runtime
    assert third_party_imports(baked / "tests", {package, "tests"}) <= runtime | dev


@pytest.mark.every_python
def test_this_environment_has_every_declared_dependency(baked: Path) -> None:
    project = tomllib.loads((baked / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    missing = [line for line in wanted if Requirement(line).marker is None or Requirement(line).marker.evaluate()]
    missing = [line for line in missing if not _installed(Requirement(line).name)]

    assert missing == [], "add these to requirements-test.txt"


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.every_python
def test_ruff_finds_nothing(baked: Path) -> None:
    run(baked, sys.executable, "-m", "ruff", "check", "--no-cache", ".")
    run(baked, sys.executable, "-m", "ruff", "format", "--no-cache", "--check", ".")


@pytest.mark.every_python
def test_mypy_strict_finds_nothing(baked: Path) -> None:
    run(baked, sys.executable, "-m", "mypy", "--strict", "--no-incremental")


def test_baked_suite_passes_the_full_proof_with_every_pattern(
    baked: Path, answers: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "report.xml"
    project = shutil.copytree(baked, tmp_path / "project")  # the run writes .coverage files: not into `baked`

    # What the baked CI runs: the heavy tests too, in random order, with the coverage floor. CI: no database fails.
    done = run_suite(project, *FULL_PROOF, f"--junitxml={report}", env={"CI": "true"})

    assert done.returncode == 0, done.stdout + done.stderr
    cases = ET.parse(report).getroot().iter("testcase")
    outcomes = [(case.get("classname", ""), case.get("name", ""), [child.tag for child in case]) for case in cases]
    assert [case for case in outcomes if case[2]] == [], "skipped or failed tests"
    expected = [pattern for pattern in PATTERNS if answers["database"] != "none" or pattern != "test_p03"]
    ran = {pattern for pattern in expected for classname, _, _ in outcomes if f".{pattern}_" in f".{classname}"}
    assert sorted(ran) == expected
    modules = {classname.split(".")[-1] for classname, _, _ in outcomes}
    assert {"test_process", "test_concurrency", "test_harness"} <= modules  # heavy
    loop_test = (
        "test_tests_run_on_uvloop"
        if answers["event_loop"] == "uvloop"
        else "test_tests_run_on_the_standard_asyncio_loop"
    )
    assert [name for classname, name, _ in outcomes if "test_p12" in classname] == [loop_test]


@pytest.mark.parametrize("database", CHOICES["database"])
def test_longest_allowed_package_name_stays_ruff_clean(cookies, database: str) -> None:  # type: ignore[no-untyped-def]
    package = "a_package_name_of_32_characters_"[:32]
    project = bake(cookies, {"package_name": package, "project_slug": "long-name", "database": database})

    run(project, sys.executable, "-m", "ruff", "check", "--no-cache", ".")
    run(project, sys.executable, "-m", "ruff", "format", "--no-cache", "--check", ".")
