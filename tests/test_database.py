"""The database variants isolate every test, and say how to get a server when there is none."""

from __future__ import annotations

import re

import pytest

from .baking import bake, run_suite

ISOLATION = """
async def test_creates_a_row_over_http(client):
    response = await client.post("/items", json={"name": "left behind?"})
    assert response.status == 201


async def test_sees_an_empty_table(client):
    assert (await (await client.get("/items")).json())["items"] == []
"""
# The tests must never open DATABASE_URL: point it at nothing and they still pass.
NOWHERE = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing", "CI": "true"}
CLOSED_PORT = "postgresql://postgres@127.0.0.1:1/test"


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize("order", [("creates", "sees"), ("sees", "creates")], ids=["write-first", "read-first"])
def test_rows_written_over_http_never_reach_the_next_test(cookies, database: str, order: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    project = bake(cookies, {"database": database})
    (project / "tests" / "test_isolation.py").write_text(ISOLATION)
    names = {"creates": "test_creates_a_row_over_http", "sees": "test_sees_an_empty_table"}
    node_ids = [f"tests/test_isolation.py::{names[step]}" for step in order]

    done = run_suite(project, "-rA", "-p", "no:randomly", *node_ids, env=NOWHERE)  # the order given

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.index(names[order[0]]) < done.stdout.index(names[order[1]])
    assert "2 passed" in done.stdout


def test_without_a_server_the_tests_that_need_one_are_left_out_saying_so_once(cookies) -> None:  # type: ignore[no-untyped-def]
    project = bake(cookies, {"database": "postgresql"})

    done = run_suite(project, "-rs", env={"TEST_DATABASE_URL": CLOSED_PORT})

    hints = [line for line in done.stdout.splitlines() if f"no PostgreSQL at TEST_DATABASE_URL={CLOSED_PORT}" in line]
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(hints) == 1, hints
    assert re.match(r"\d+ tests that need PostgreSQL left out: ", hints[0])
    assert "docker compose up -d db" in hints[0]
    assert "skipped" not in done.stdout


def test_under_ci_a_missing_server_is_a_failure(cookies) -> None:  # type: ignore[no-untyped-def]
    project = bake(cookies, {"database": "postgresql"})

    env = {"TEST_DATABASE_URL": CLOSED_PORT, "CI": "true"}
    done = run_suite(project, "tests/test_p03_database_rollback.py", env=env)

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"no PostgreSQL at TEST_DATABASE_URL={CLOSED_PORT}" in done.stdout
    assert "skipped" not in done.stdout
