"""Refuse answers that would bake a broken project, with one line saying why.

Runs with the user's own interpreter before any file is written: standard
library only, no network. Cookiecutter removes the half-made project folder
when this exits non-zero.
"""

from __future__ import annotations

import builtins
import json
import keyword
import os
import re
import sys
import unicodedata
from collections.abc import Mapping
from typing import TextIO

PACKAGE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
PROJECT_SLUG = re.compile(r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$")
# What the build backend (hatchling, through email.headerregistry) writes into the package metadata: a dot-atom
# local part, and a domain of at least two dot-separated labels of letters, digits and inner hyphens.
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL = re.compile(rf"^{ATOM}(?:\.{ATOM})*@{LABEL}(?:\.{LABEL})+$", re.ASCII)
PACKAGE_MAX = 32  # the name starts every import line; longer ones push lines past the formatter's limit
SLUG_MAX = 64
# Controls (newline, tab, DEL, C1), lone surrogates, and line and paragraph separators: the metadata refuses
# the first ("address parts cannot contain CR or LF"), UTF-8 cannot hold the second, the third break lines.
FORBIDDEN_CATEGORIES = {
    "Cc": "a control character",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}

# sys.stdlib_module_names leaves out CPython's own test suite package.
STDLIB = frozenset(sys.stdlib_module_names) | {"test"}
# Top-level import names (lowercase) of every distribution a baked project installs: its dependencies for every
# database answer with every extra, the build backend, pip, setuptools and gunicorn (the README has users install
# it), and all of theirs. Generated: tests/test_hooks.py recomputes it and prints the literal to paste on a change.
DEPENDENCY_NAMES = frozenset(
    {
        "_distutils_hack", "_hypothesis_ftz_detector", "_hypothesis_globals", "_hypothesis_pytestplugin", "_pytest",
        "_yaml", "aiohappyeyeballs", "aiohttp", "aiosignal", "aiosqlite", "annotated_types", "anyio", "ast_serialize",
        "asyncpg", "attr", "attrs", "blockbuster", "certifi", "charset_normalizer", "click", "coverage", "dotenv",
        "forbiddenfruit", "frozenlist", "graphql", "gunicorn", "harfile", "hatchling", "hypothesis",
        "hypothesis_graphql", "idna", "iniconfig", "jsonschema", "jsonschema_path", "jsonschema_rs",
        "jsonschema_specifications", "lazy_object_proxy", "librt", "markdown_it", "markupsafe", "mdurl", "multidict",
        "mypy", "mypy_extensions", "mypyc", "openapi_schema_validator", "openapi_spec_validator", "packaging",
        "pathable", "pathspec", "pip", "pkg_resources", "pluggy", "propcache", "py", "pydantic", "pydantic_core",
        "pydantic_settings", "pygments", "pyrate_limiter", "pytest", "pytest_aiohttp", "pytest_asyncio", "pytest_cov",
        "pytest_mock", "pytest_randomly", "pytest_timeout", "referencing", "requests", "rfc3339_validator", "rich",
        "rpds", "ruff", "schemathesis", "setuptools", "six", "sortedcontainers", "tomlkit", "trove_classifiers",
        "typing_extensions", "typing_inspection", "urllib3", "uvloop", "werkzeug", "yaml", "yarl",
    }
)  # fmt: skip
# The same tree's distribution names (canonical: lowercase, runs of -_. as -): a project named like one of
# them would have to be its own dependency (pip: ResolutionImpossible). Generated like DEPENDENCY_NAMES.
DISTRIBUTION_NAMES = frozenset(
    {
        "aiohappyeyeballs", "aiohttp", "aiosignal", "aiosqlite", "annotated-types", "anyio", "ast-serialize", "asyncpg",
        "asyncpg-stubs", "attrs", "blockbuster", "certifi", "charset-normalizer", "click", "coverage", "forbiddenfruit",
        "frozenlist", "graphql-core", "gunicorn", "harfile", "hatchling", "hypothesis", "hypothesis-graphql", "idna",
        "iniconfig", "jsonschema", "jsonschema-path", "jsonschema-rs", "jsonschema-specifications", "lazy-object-proxy",
        "librt", "markdown-it-py", "markupsafe", "mdurl", "multidict", "mypy", "mypy-extensions",
        "openapi-schema-validator", "openapi-spec-validator", "packaging", "pathable", "pathspec", "pip", "pluggy",
        "propcache", "pydantic", "pydantic-core", "pydantic-settings", "pygments", "pyrate-limiter", "pytest",
        "pytest-aiohttp", "pytest-asyncio", "pytest-cov", "pytest-mock", "pytest-randomly", "pytest-timeout",
        "python-dotenv", "pyyaml", "referencing", "requests", "rfc3339-validator", "rich", "rpds-py", "ruff",
        "schemathesis", "setuptools", "six", "sortedcontainers", "tomlkit", "trove-classifiers", "types-jsonschema",
        "typing-extensions", "typing-inspection", "urllib3", "uvloop", "werkzeug", "yarl",
    }
)  # fmt: skip
# Written by hand: top-level folders of the baked project itself (pytest imports its tests as `tests`).
PROJECT_NAMES = frozenset({"tests"})
TAKEN_NAMES = DEPENDENCY_NAMES | PROJECT_NAMES


class AnswerError(ValueError):
    """One answer breaks a rule; the message names the value, the rule and a valid example."""


def check_package_name(name: str) -> None:
    """The import name must be a short, lowercase identifier that shadows nothing."""
    example = "use something like 'order_service'"
    if not name:
        raise AnswerError(f"package_name is empty; {example}")
    if not PACKAGE_NAME.fullmatch(name):
        rule = "is not a lowercase Python identifier (a-z, 0-9 and _, not starting with a digit)"
        raise AnswerError(f"package_name {name!r} {rule}; {example}")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise AnswerError(f"package_name {name!r} is a Python keyword; {example}")
    if hasattr(builtins, name):
        raise AnswerError(f"package_name {name!r} shadows the Python builtin of that name; {example}")
    if name in STDLIB:
        raise AnswerError(f"package_name {name!r} shadows the standard-library module {name!r}; {example}")
    if name in TAKEN_NAMES:
        raise AnswerError(f"package_name {name!r} shadows a dependency or folder of the project; {example}")
    if len(name) > PACKAGE_MAX:
        raise AnswerError(f"package_name {name!r} is longer than {PACKAGE_MAX} characters; {example}")


def check_project_slug(slug: str) -> None:
    """The slug names the folder, the distribution and the command: lowercase words joined by '-'."""
    example = "use something like 'order-service'"
    if not slug:
        raise AnswerError(f"project_slug is empty; {example}")
    if not PROJECT_SLUG.fullmatch(slug):
        rule = "is not a valid distribution name (lowercase letters and digits, words joined by -)"
        raise AnswerError(f"project_slug {slug!r} {rule}; {example}")
    if len(slug) > SLUG_MAX:
        raise AnswerError(f"project_slug {slug!r} is longer than {SLUG_MAX} characters; {example}")
    if (canonical := re.sub(r"[-_.]+", "-", slug)) in DISTRIBUTION_NAMES:
        raise AnswerError(f"project_slug {slug!r} is the name of the project's dependency {canonical!r}; {example}")


def check_characters(key: str, value: str) -> None:
    """Free text may hold any printable character, but no control character or line break."""
    for position, character in enumerate(value, start=1):
        if (kind := FORBIDDEN_CATEGORIES.get(unicodedata.category(character))) is not None:
            where = f"U+{ord(character):04X}, {kind}, at character {position}"
            raise AnswerError(f"{key} {value!r} contains {where}; give one line of printable text")


def check_text(key: str, value: str) -> None:
    """Free text may hold anything printable, but not nothing."""
    if not value.strip():
        raise AnswerError(f"{key} is empty; give a few words, e.g. 'Order Service'")
    check_characters(key, value)


def check_email(email: str) -> None:
    """The author e-mail must be one the package metadata accepts (it goes into pyproject's authors)."""
    if not EMAIL.fullmatch(email):
        rule = "is not an address the package metadata accepts (name@domain.tld, no quotes, commas or brackets)"
        raise AnswerError(f"author_email {email!r} {rule}; use something like 'you@example.com'")


def validate(answers: Mapping[str, object]) -> None:
    """Raise AnswerError for the first answer that breaks a rule."""
    check_text("project_name", str(answers["project_name"]))
    check_characters("description", str(answers["description"]))
    check_text("author_name", str(answers["author_name"]))
    check_project_slug(str(answers["project_slug"]))
    check_package_name(str(answers["package_name"]))
    check_email(str(answers["author_email"]))


def label(stream: TextIO) -> str:
    """`error:`, in bold red on a terminal (unless NO_COLOR is set): the line to read above cookiecutter's own."""
    if stream.isatty() and not os.environ.get("NO_COLOR"):
        return "\033[1;31merror:\033[0m"
    return "error:"


def main(answers: Mapping[str, object]) -> int:
    """Validate; print one line to stderr and return 1 when an answer is bad."""
    try:
        validate(answers)
    except AnswerError as error:
        print(f"{label(sys.stderr)} {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(r"""{{ cookiecutter | tojson }}""")))
