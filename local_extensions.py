"""Jinja filters the template uses to write answers safely into generated files."""

from __future__ import annotations

import json

from jinja2 import Environment
from jinja2.ext import Extension


def quoted(value: object) -> str:
    """A double-quoted literal of `value` that TOML, Python and JSON all read back unchanged.

    Quotes, backslashes and control characters are escaped; other non-ASCII
    text is kept as it is (TOML rejects the surrogate-pair escapes that
    Jinja's `tojson` writes for characters such as emoji).
    """
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


class QuotedString(Extension):
    """Adds the `quoted` filter."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["quoted"] = quoted
