"""A deliberately CPU-heavy computation, run off the event loop."""

from __future__ import annotations

import hashlib
import json

from .items import Item

ITERATIONS = 100_000


def fingerprint(item: Item) -> str:
    """A slow, stable PBKDF2 digest of an item's content (blocking: call it in a thread)."""
    content = json.dumps(item.to_json(), sort_keys=True).encode()
    return hashlib.pbkdf2_hmac("sha256", content, b"items", ITERATIONS).hex()
