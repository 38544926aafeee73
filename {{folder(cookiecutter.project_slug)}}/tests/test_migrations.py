"""Migrations: the shipped files are applied in version order, whatever order the folder lists them in."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable

import pytest

from {{ cookiecutter.package_name }} import migrations


class ReversedListing:
    """A folder that lists its files in reverse name order, as a file system is free to."""

    def __init__(self, folder: Traversable) -> None:
        self.folder = folder

    def joinpath(self, *parts: str) -> ReversedListing:
        return ReversedListing(self.folder.joinpath(*parts))

    def iterdir(self) -> Iterator[Traversable]:
        return iter(sorted(self.folder.iterdir(), key=lambda entry: entry.name, reverse=True))


def test_migrations_come_in_version_order_whatever_the_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    files = resources.files
    monkeypatch.setattr(resources, "files", lambda package: ReversedListing(files(package)))

    versions = [migration.version for migration in migrations.pending("{{ cookiecutter.database }}", set())]

    assert len(versions) > 1
    assert versions == sorted(versions)
