"""Remove the files the answers did not ask for, and record where the template came from.

One table maps each answer to the paths it makes unnecessary; one remover
deletes them and fails loudly when a listed path does not exist, so the
table cannot drift from the template. Safe to run again (cruft update
re-runs it): it only ever acts on a freshly rendered tree. A plain
cookiecutter bake gets the .cruft.json that `cruft create` would write.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

PACKAGE = "src/{package}"

MEMORY = [f"{PACKAGE}/store_memory.py", "tests/support/memory_fixtures.py"]
SQLITE = [
    f"{PACKAGE}/store_sqlite.py",
    f"{PACKAGE}/migrations/sqlite",
    "tests/support/sqlite_fixtures.py",
    "tests/test_faults_sqlite.py",
]
POSTGRESQL = [
    f"{PACKAGE}/store_postgresql.py",
    f"{PACKAGE}/lender.py",
    f"{PACKAGE}/migrations/postgresql",
    "tests/support/postgresql_fixtures.py",
    "tests/support/postgresql_proxy.py",
    "tests/test_faults_postgresql.py",
    "tests/test_outcomes_postgresql.py",
    "tests/test_pool_postgresql.py",
    "compose.yaml",
]
ANY_DATABASE = [
    f"{PACKAGE}/migrations.py",
    "tests/test_p03_database_rollback.py",
    "tests/test_migrations.py",
    "tests/test_events_across_processes.py",
    "tests/support/event_stream.py",
    "tests/support/gunicorn_process.py",
]

REMOVE: dict[tuple[str, str], list[str]] = {
    ("database", "sqlite"): MEMORY + POSTGRESQL,
    ("database", "postgresql"): MEMORY + SQLITE,
    ("database", "none"): SQLITE + POSTGRESQL + ANY_DATABASE + [f"{PACKAGE}/migrations"],
}


class PruneError(RuntimeError):
    """The table lists a path the template does not have."""


def paths_to_remove(answers: Mapping[str, object]) -> list[str]:
    """The project-relative paths the answers make unnecessary, package name filled in."""
    paths = []
    for (key, value), listed in REMOVE.items():
        if answers.get(key) == value:
            paths.extend(path.format(package=answers["package_name"]) for path in listed)
    return paths


def remove(project: Path, paths: list[str]) -> None:
    """Delete each path (file or folder) under `project`; raise PruneError if one is missing."""
    missing = [path for path in paths if not (project / path).exists()]
    if missing:
        raise PruneError(f"the prune table lists paths the template does not have: {', '.join(missing)}")
    for path in paths:
        target = project / path
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


def record_origin(answers: Mapping[str, object], project: Path, origin: Mapping[str, str]) -> None:
    """Write .cruft.json as `cruft create` does, so `cruft check` and `cruft update` serve a plain bake as well.

    Not when cruft renders (`_commit` set: it writes its own), nor for a template without git history (no origin).
    """
    if "_commit" in answers or not origin:
        return
    context = {key: value for key, value in answers.items() if key not in {"_output_dir", "_repo_dir", "_checkout"}}
    context.update(_template=origin["template"], _commit=origin["commit"])
    state = {
        "template": origin["template"],
        "commit": origin["commit"],
        "checkout": answers.get("_checkout"),
        "context": {"cookiecutter": context},
        "directory": None,
    }
    text = json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": ")) + "\n"
    (project / ".cruft.json").write_text(text, encoding="utf-8")


def main(answers: Mapping[str, object], project: Path, origin: Mapping[str, str]) -> int:
    """Prune `project` and record its origin; print one line to stderr and return 1 when the table is wrong."""
    try:
        remove(project, paths_to_remove(answers))
    except PruneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    record_origin(answers, project, origin)
    return 0


if __name__ == "__main__":
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    sys.exit(main(answers, Path.cwd(), json.loads(r"""{{ template_origin(cookiecutter._template) | tojson }}""")))
