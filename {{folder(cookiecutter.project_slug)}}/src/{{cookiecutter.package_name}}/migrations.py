"""Versioned SQL migrations: numbered files applied once each, in order.

Add a change to the schema as a new file next to the others, for example
`migrations/<dialect>/0002_add_price.sql`; it is applied at the next start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

FILE_NAME = re.compile(r"^(\d{4}_[a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change: its version (the file name) and its SQL."""

    version: str
    sql: str


def load(dialect: str) -> list[Migration]:
    """Every migration shipped for this SQL dialect, oldest first."""
    folder = resources.files(__package__).joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        match = FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(version=match[1], sql=entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def pending(dialect: str, applied: set[str]) -> list[Migration]:
    """The migrations not yet applied, in the order to apply them."""
    return [migration for migration in load(dialect) if migration.version not in applied]
