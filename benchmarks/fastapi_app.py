"""The reference a user might pick instead: FastAPI answering the benchmarked paths with the same JSON.

Run: `uvicorn fastapi_app:app --loop uvloop --http httptools --no-access-log` from benchmarks/.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Response

HEALTH = json.dumps({"status": "ok"}).encode()
ITEM = {"id": 1, "name": "bench", "quantity": 1}

app = FastAPI()


@app.get("/health")
async def health() -> Response:
    """The same pre-encoded body as the baked service's /health."""
    return Response(content=HEALTH, media_type="application/json")


@app.get("/items/1")
async def item() -> dict[str, object]:
    """The benchmark's item, encoded per request (as the baked service and the bare app do)."""
    return ITEM
