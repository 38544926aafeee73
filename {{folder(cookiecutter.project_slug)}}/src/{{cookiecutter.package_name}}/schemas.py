"""Every request and answer shape of the API, as JSON Schema: what openapi.py publishes.

The handlers check requests by hand (items.py: precise messages, no cost on
the hot path); tests/test_openapi.py proves that these schemas accept
exactly what the handlers accept.
"""

from __future__ import annotations

from . import items
from .items import ID_MAX, NAME_MAX_LENGTH, PAGE_MAX, QUANTITY_MAX, UNSAFE_KINDS

Schema = dict[str, object]

# What str.strip() removes: every character str.isspace() holds true for (a test checks the list).
WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
WHITESPACE += "\u2028\u2029\u202f\u205f\u3000"

COMPONENTS: dict[str, Schema] = {}


def named(name: str, schema: Schema) -> Schema:
    """A reference to `schema`, published under `name` in the document's components."""
    COMPONENTS[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def one_of(characters: str, *, but: bool = False) -> str:
    """A regular expression class matching one of `characters` (or, `but`, any other), each written as \\uXXXX.

    The escapes read the same in Python and in ECMA-262, the dialect of JSON Schema's patterns.
    """
    points = sorted(set(map(ord, characters)))
    ranges: list[list[int]] = []
    for point in points:
        if ranges and point == ranges[-1][1] + 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    body = "".join(f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges)
    return f"[{'^' if but else ''}{body}]"


def _name_pattern() -> str:
    """A name as items.py takes it: 1 to NAME_MAX_LENGTH safe characters once the whitespace around is removed.

    Lone surrogates are left out: no JSON Schema pattern can name them (Rust's and ECMA-262's regexes take only
    whole characters), and a JSON string holding one is not Unicode text anyway. The service refuses them all the same.
    """
    unsafe = "".join(kind for kind, said in UNSAFE_KINDS.items() if said != "a lone surrogate")
    space, safe, solid = one_of(WHITESPACE), one_of(unsafe, but=True), one_of(unsafe + WHITESPACE, but=True)
    between = "{0," + str(NAME_MAX_LENGTH - 2) + "}"  # not an f-string: its doubled braces are Jinja's own
    return f"^{space}*{solid}(?:{safe}{between}{solid})?{space}*$"


def integer(low: int, high: int, **more: object) -> Schema:
    """An integer from `low` to `high`."""
    return {"type": "integer", "minimum": low, "maximum": high, **more}


def only(properties: Schema, *, required: tuple[str, ...] | None = None, **more: object) -> Schema:
    """A JSON object holding `properties` and nothing else, each required unless `required` names which are."""
    needed = list(properties) if required is None else list(required)
    return {"type": "object", "properties": properties, "required": needed, "additionalProperties": False, **more}


def status(*values: str) -> Schema:
    """A `{"status": ...}` object holding one of `values`."""
    return only({"status": {"enum": list(values)}})


ITEM_ID = integer(1, ID_MAX)
NEW_ITEM = named(
    "NewItem",
    only(
        {
            "name": {
                "type": "string",
                "pattern": _name_pattern(),
                "description": (
                    f"1 to {NAME_MAX_LENGTH} characters once the whitespace around them is removed (it is not stored);"
                    " no control character, lone surrogate or bidirectional override"
                ),
            },
            "quantity": integer(0, QUANTITY_MAX, default=0),
        },
        required=("name",),
        examples=[{"name": "desk", "quantity": 3}],
    ),
)
ITEM = named(
    "Item",
    only(
        {
            "id": ITEM_ID,
            "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH},
            "quantity": integer(0, QUANTITY_MAX),
        },
        examples=[{"id": 1, "name": "desk", "quantity": 3}],
    ),
)
PAGE = named(
    "Page",
    only(
        {
            "items": {"type": "array", "items": ITEM, "maxItems": PAGE_MAX},
            "limit": integer(1, PAGE_MAX),
            "offset": integer(0, ID_MAX),
        }
    ),
)
ITEM_EVENT = named(
    "ItemEvent",
    only(
        {"id": ITEM_ID, "type": {"enum": ["item.created", "item.deleted"]}, "item": ITEM},
        description="One text frame of GET /events: an item's change, ids growing in the order they were made.",
    ),
)
FINGERPRINT = named(
    "Fingerprint", only({"id": ITEM_ID, "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{64}$"}})
)
ERROR = named(
    "Error",
    only(
        {"error": only({"code": {"type": "string"}, "message": {"type": "string"}})},
        description="Every error: `code` for programs (e.g. invalid, not_found), `message` for people.",
    ),
)
UPSTREAM_STATUS = only({"upstream": {"type": "object", "description": "the JSON object UPSTREAM_URL answered"}})
# The service's own rule, anchored: its \xHH escapes read alike in Python, Rust and ECMA-262.
IDEMPOTENCY_KEY: Schema = {"type": "string", "pattern": f"^{items.IDEMPOTENCY_KEY.pattern}$"}
