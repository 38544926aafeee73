"""Every bug in tests/mutations.py makes the baked suite fail, within a minute and naming a test.

One default bake per database (event_loop default); each case copies it,
applies one mutation (a bug in shared code: to one bake, in turn) and runs
the baked suite with `-x` (and `--heavy` for a bug only the full proof
catches): first only the test its `caught_by` names, then, should that pass,
the whole suite. PostgreSQL cases get a scratch database of
their own, so a mutation that commits rows cannot leave them in the shared
`test` database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from .baking import bake, package_of, run_suite
from .mutations import ALL, MUTATIONS, Mutation

pytestmark = pytest.mark.slow


def databases_to_try(index: int, mutation: Mutation) -> tuple[str, ...]:
    """Where `mutation` (the `index`th) is tried: each database it names; a bug in code every bake shares (ALL) on
    one of them, in turn, so each bake's suite still meets a third of those (and .ci/run stays short)."""
    return (ALL[index % len(ALL)],) if mutation.databases == ALL else mutation.databases


CASES = [
    pytest.param(database, mutation, id=f"{mutation.id}-{database}")
    for index, mutation in enumerate(MUTATIONS)
    for database in databases_to_try(index, mutation)
]
FUTURE = "from __future__ import annotations\n"
FIRST_FAILURE = re.compile(r"^(?:FAILED|ERROR) tests/\S+::\S+.*$", re.MULTILINE)
SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
# pytest-randomly, when installed, would reorder the baked suite; `-p no:randomly` is an error when it is not.
NO_RANDOM_ORDER = ("-p", "no:randomly") if importlib.util.find_spec("pytest_randomly") else ()
# pytest's exit codes when the hinted test passed (0), is not found (4) or selects nothing (5).
HINT_MISSED = {0, 4, 5}


@pytest.fixture(scope="session")
def pristine(cookies_session) -> Callable[[str], Path]:  # type: ignore[no-untyped-def]
    """Session scope: `pristine(database)` is the default bake for it, made once, never run (cases copy it)."""

    @functools.cache
    def bake_for(database: str) -> Path:
        return bake(cookies_session, {"database": database})

    return bake_for


def apply(mutation: Mutation, project: Path) -> None:
    """Edit `project` as `mutation` says; fail, naming it, when its text no longer occurs exactly once."""
    path = project / mutation.path.format(package=package_of(project))
    if not path.is_file():
        pytest.fail(f"mutation {mutation.id}: {mutation.path} is not in the bake; update tests/mutations.py")
    text = path.read_text(encoding="utf-8")
    edits = [(mutation.find, mutation.replace)]
    if mutation.add_import:
        edits.append((FUTURE, f"{FUTURE}{mutation.add_import}\n"))
    for find, replace in edits:
        if (count := text.count(find)) != 1:
            pytest.fail(
                f"mutation {mutation.id}: the text to find occurs {count} times in {mutation.path}, not once; "
                f"the template changed, update tests/mutations.py. Text:\n{find}",
                pytrace=False,
            )
        text = text.replace(find, replace)
    path.write_text(text, encoding="utf-8")


async def _on_server(sql: str) -> None:
    connection = await asyncpg.connect(SERVER_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    name = f"mutation_{uuid.uuid4().hex[:16]}"
    asyncio.run(_on_server(f'CREATE DATABASE "{name}"'))
    try:
        yield urlsplit(SERVER_URL)._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(_on_server(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.mark.parametrize(("database", "mutation"), CASES)
def test_mutation_is_caught(
    pristine: Callable[[str], Path],
    database: str,
    mutation: Mutation,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    source = pristine(database)
    project = Path(shutil.copytree(source, tmp_path / source.name))
    apply(mutation, project)

    with scratch_database() if database == "postgresql" else contextlib.nullcontext() as url:
        env: dict[str, str | None] = {"CI": "true", "TEST_DATABASE_URL": url} if url else {}
        # The test expected to catch it first, alone: most cases end there, in seconds. Should it pass, or no
        # longer exist, the whole suite decides (and the time counted is the whole suite's).
        heavy = ["--heavy"] if mutation.heavy else []
        for selection in ([mutation.caught_by.format(database=database)], []):
            started = time.monotonic()
            done = run_suite(project, "-x", *NO_RANDOM_ORDER, *heavy, *selection, env=env)
            if done.returncode not in HINT_MISSED:
                break
        elapsed = time.monotonic() - started

    output = done.stdout + done.stderr
    caught_by = FIRST_FAILURE.search(done.stdout)
    record_property("caught_by", caught_by[0] if caught_by else "")
    record_property("seconds", f"{elapsed:.1f}")
    assert done.returncode != 0, f"{mutation.id} survived: {mutation.description}\n{done.stdout[-2000:]}"
    assert done.returncode == 1, f"{mutation.id}: the suite could not run (exit {done.returncode}):\n{output}"
    assert caught_by, f"{mutation.id}: no FAILED/ERROR line names a test:\n{output}"
    assert elapsed < 60, f"{mutation.id}: caught only after {elapsed:.0f} s by {caught_by[0]}"


@pytest.mark.parametrize(("database", "mutation"), CASES)
def test_the_hinted_test_exists_in_the_bake(pristine: Callable[[str], Path], database: str, mutation: Mutation) -> None:
    """A stale hint only slows its case down (the whole suite then decides): this names it instead."""
    path, _, function = mutation.caught_by.format(database=database).partition("::")
    assert path, f"{mutation.id}: no caught_by"

    source = (pristine(database) / path).read_text(encoding="utf-8")

    assert not function or re.search(rf"^(async )?def {function}\(", source, re.MULTILINE), mutation.caught_by
