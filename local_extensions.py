"""Jinja helpers the template uses: answers written safely into generated files, and the project folder's name."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

from cookiecutter.config import BUILTIN_ABBREVIATIONS
from cookiecutter.repository import expand_abbreviations
from jinja2 import Environment
from jinja2.ext import Extension

# Letters, digits, `-`, `_` and `.`: one folder name on every system (not `.` or `..`, which are dots alone).
ONE_FOLDER = re.compile(r"[\w.-]+")
PACKAGE_MAX = 32  # the pre_gen hook's limit on package_name (tests/test_hooks.py checks they agree)


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


def package(slug: object) -> str:
    """The default package name: the slug with `_` for `-`, cut to its first words that fit in PACKAGE_MAX.

    A default made from the user's own answer must never be refused; the answer itself may still be any length.
    """
    name = str(slug).replace("-", "_")
    while len(name) > PACKAGE_MAX and "_" in name:
        name = name.rsplit("_", 1)[0]
    return name[:PACKAGE_MAX].rstrip("_")


def folder(slug: object) -> str:
    """The project folder's name: the slug when it is one folder name; else a hidden name of its own.

    Cookiecutter makes the project folder before the pre-gen hook sees the answers, and removes only that folder
    when the hook refuses them: a slug like `a/b` or `../x` would leave `a/` or `../x/` behind, and an empty one
    would name the output folder itself. The hook refuses every such slug, so the stand-in never outlives the bake.
    """
    text = str(slug)
    return text if ONE_FOLDER.fullmatch(text) and text.strip(".") else f".refused-slug-{uuid.uuid4().hex[:12]}"


def template_origin(template: object) -> dict[str, str]:
    """Where this bake's template comes from as cruft records it (a git URL, or a folder's path), and its commit.

    Empty for a template without git history. Cookiecutter renders hooks in the template's folder, where this runs.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True)
    except OSError:  # no git on this machine: a template from a zip file or a plain folder bakes without it
        return {}
    found = head.stdout.split()
    if head.returncode != 0 or Path(found[0]).resolve() != Path.cwd().resolve():
        return {}
    source = str(template)
    location = (
        str(Path.cwd()) if Path(source).expanduser().is_dir() else expand_abbreviations(source, BUILTIN_ABBREVIATIONS)
    )
    return {"template": location, "commit": found[1]}


class TemplateFilters(Extension):
    """Adds the `quoted`, `sentence` and `package` filters and the `folder()` and `template_origin()` functions.

    The template folder's name calls `folder()`: a `|` would make a file name Windows cannot check out.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["quoted"] = quoted
        environment.filters["sentence"] = sentence
        environment.filters["package"] = package
        environment.globals["folder"] = folder
        environment.globals["template_origin"] = template_origin
