"""The names of every distribution a baked project installs, and their top-level import names, read from here.

The pre_gen hook may use only the standard library, so it cannot compute these names when it runs: it keeps
them as a literal, and tests/test_hooks.py recomputes them here and prints the literal to paste when it drifts.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Files a distribution installs at the top of site-packages that are importable modules.
MODULE_SUFFIXES = tuple(importlib.machinery.SOURCE_SUFFIXES + importlib.machinery.EXTENSION_SUFFIXES)
INDENT = " " * 8
WIDTH = 120


def project_requirements(pyproject: Mapping[str, object]) -> list[Requirement]:
    """Everything a baked pyproject.toml asks for: dependencies, every optional group, the build backend."""
    project = pyproject["project"]
    build_system = pyproject["build-system"]
    assert isinstance(project, Mapping)
    assert isinstance(build_system, Mapping)
    lines = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        lines.extend(group)
    lines.extend(build_system.get("requires", []))
    return [Requirement(line) for line in lines]


def _applies(requirement: Requirement, extras: Iterable[str], pythons: Sequence[str]) -> bool:
    """Whether `requirement` is installed on this platform, under any of `pythons`, with `extras` asked for."""
    if requirement.marker is None:
        return True
    return any(
        requirement.marker.evaluate({"python_version": python, "python_full_version": f"{python}.0", "extra": extra})
        for python in pythons
        for extra in ["", *extras]
    )


def dependency_tree(
    roots: Iterable[Requirement], pythons: Sequence[str]
) -> tuple[dict[str, importlib.metadata.Distribution], set[str]]:
    """Every distribution `roots` pull in, recursively with the extras asked for; and the ones not installed here.

    Markers are evaluated for this platform and each of `pythons` (a dependency of any supported Python counts).
    """
    found: dict[str, importlib.metadata.Distribution] = {}
    missing: set[str] = set()
    done: dict[str, set[str]] = {}
    pending = [requirement for requirement in roots if _applies(requirement, (), pythons)]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in done and extras <= done[name]:
            continue
        done[name] = done.get(name, set()) | extras
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.add(name)
            continue
        found[name] = distribution
        for line in distribution.requires or []:
            child = Requirement(line)
            if _applies(child, done[name], pythons):
                pending.append(child)
    return found, missing


def import_names(distribution: importlib.metadata.Distribution) -> set[str]:
    """The top-level names `distribution` makes importable, lowercase: top_level.txt and the top of its file list.

    Names that are not identifiers (mypyc's hashed helper modules, `asyncpg-stubs`) are left out: no
    package_name can be one.
    """
    names = set((distribution.read_text("top_level.txt") or "").split())
    for path in distribution.files or []:
        top = path.parts[0]
        if top in {"..", "__pycache__"} or top.endswith((".dist-info", ".egg-info", ".data")):
            continue
        if len(path.parts) > 1:
            names.add(top)
        elif top.endswith(MODULE_SUFFIXES):
            names.add(top.partition(".")[0])
    return {name.lower() for name in names if name.isidentifier()}


def taken_names(roots: Iterable[Requirement], pythons: Sequence[str]) -> tuple[dict[str, set[str]], set[str]]:
    """The names the whole tree under `roots` takes, by kind ("import", "distribution": canonical); and the
    distributions in it that are not installed here."""
    found, missing = dependency_tree(roots, pythons)
    imports = {name for distribution in found.values() for name in import_names(distribution)}
    return {"import": imports, "distribution": set(found)}, missing


def frozenset_literal(variable: str, names: Iterable[str]) -> str:
    """`variable = frozenset({...})  # fmt: skip`, sorted and packed to the line length, as the hook spells it."""
    lines: list[str] = []
    line = ""
    for item in (f'"{name}",' for name in sorted(set(names))):
        candidate = f"{line} {item}" if line else f"{INDENT}{item}"
        if line and len(candidate) > WIDTH:
            lines.append(line)
            candidate = f"{INDENT}{item}"
        line = candidate
    if line:
        lines.append(line)
    body = "\n".join(lines)
    return f"{variable} = frozenset(\n    {{\n{body}\n    }}\n)  # fmt: skip"
