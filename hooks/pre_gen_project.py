"""Refuse answers that would bake a broken project, with one line saying why.

Runs with the user's own interpreter before any file is written: standard
library only, no network. Cookiecutter removes the half-made project folder
when this exits non-zero.
"""

from __future__ import annotations

import builtins
import json
import keyword
import re
import sys
from collections.abc import Mapping

PACKAGE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
PROJECT_SLUG = re.compile(r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PACKAGE_MAX = 32  # the name starts every import line; longer ones push lines past the formatter's limit
SLUG_MAX = 64

# sys.stdlib_module_names leaves out CPython's own test suite package.
STDLIB = frozenset(sys.stdlib_module_names) | {"test"}
# Import names of the baked project's own dependencies and tools, and its tests package.
TAKEN_NAMES = frozenset(
    {
        "aiohttp", "aiosignal", "aiosqlite", "asyncpg", "asyncpg_stubs", "attr", "attrs", "blockbuster",
        "frozenlist", "hatchling", "hypothesis", "multidict", "mypy", "propcache", "pytest", "pytest_aiohttp",
        "pytest_asyncio", "pytest_mock", "pytest_timeout", "ruff", "setuptools", "tests", "uvloop", "yarl",
    }
)  # fmt: skip


class AnswerError(ValueError):
    """One answer breaks a rule; the message names the value, the rule and a valid example."""


def check_package_name(name: str) -> None:
    """The import name must be a short, lowercase identifier that shadows nothing."""
    example = "use something like 'order_service'"
    if not name:
        raise AnswerError(f"package_name is empty; {example}")
    if not PACKAGE_NAME.match(name):
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
    if not PROJECT_SLUG.match(slug):
        rule = "is not a valid distribution name (lowercase letters and digits, words joined by -)"
        raise AnswerError(f"project_slug {slug!r} {rule}; {example}")
    if len(slug) > SLUG_MAX:
        raise AnswerError(f"project_slug {slug!r} is longer than {SLUG_MAX} characters; {example}")


def check_text(key: str, value: str) -> None:
    """Free text may hold anything printable, but not nothing."""
    if not value.strip():
        raise AnswerError(f"{key} is empty; give a few words, e.g. 'Order Service'")


def check_email(email: str) -> None:
    """The author e-mail must look like one (it goes into pyproject's authors)."""
    if not EMAIL.match(email):
        raise AnswerError(f"author_email {email!r} is not an e-mail address; use something like 'you@example.com'")


def validate(answers: Mapping[str, object]) -> None:
    """Raise AnswerError for the first answer that breaks a rule."""
    check_text("project_name", str(answers["project_name"]))
    check_text("author_name", str(answers["author_name"]))
    check_project_slug(str(answers["project_slug"]))
    check_package_name(str(answers["package_name"]))
    check_email(str(answers["author_email"]))


def main(answers: Mapping[str, object]) -> int:
    """Validate; print one line to stderr and return 1 when an answer is bad."""
    try:
        validate(answers)
    except AnswerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(r"""{{ cookiecutter | tojson }}""")))
