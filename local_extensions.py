"""Jinja helpers the template uses: answers written safely into generated files, and the project folder's name."""

from __future__ import annotations

import json
import re
import uuid

from jinja2 import Environment
from jinja2.ext import Extension

# Letters, digits, `-`, `_` and `.`: one folder name on every system (not `.` or `..`, which are dots alone).
ONE_FOLDER = re.compile(r"[\w.-]+")


def quoted(value: object) -> str:
    """A double-quoted literal of `value` that TOML, Python and JSON all read back unchanged.

    Quotes, backslashes and control characters are escaped; other non-ASCII
    text is kept as it is (TOML rejects the surrogate-pair escapes that
    Jinja's `tojson` writes for characters such as emoji).
    """
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def sentence(value: object) -> str:
    """`value` ending as a sentence does (`.`, `?` or `!`), so it can open a docstring."""
    text = str(value).rstrip()
    return text if text.endswith((".", "?", "!")) else f"{text}."


def folder(slug: object) -> str:
    """The project folder's name: the slug when it is one folder name; else a hidden name of its own.

    Cookiecutter makes the project folder before the pre-gen hook sees the answers, and removes only that folder
    when the hook refuses them: a slug like `a/b` or `../x` would leave `a/` or `../x/` behind, and an empty one
    would name the output folder itself. The hook refuses every such slug, so the stand-in never outlives the bake.
    """
    text = str(slug)
    return text if ONE_FOLDER.fullmatch(text) and text.strip(".") else f".refused-slug-{uuid.uuid4().hex[:12]}"


class TemplateFilters(Extension):
    """Adds the `quoted` and `sentence` filters and the `folder()` function.

    The template folder's name calls `folder()`: a `|` would make a file name Windows cannot check out.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["quoted"] = quoted
        environment.filters["sentence"] = sentence
        environment.globals["folder"] = folder
