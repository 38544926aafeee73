"""The baked service as a gunicorn application, for aiohttp's gunicorn workers.

    PYTHONPATH=<bake>/src:benchmarks gunicorn gunicorn_app:app --workers 2 \\
        --worker-class aiohttp.GunicornUVLoopWebWorker

aiohttp's worker accepts an Application or a coroutine function returning one
(aiohttp/worker.py, `GunicornWebWorker._run`). This is the coroutine function,
so every worker builds its own app, and opens its own database connection,
after the fork.
"""

from __future__ import annotations

import os

from aiohttp import web
from async_service.app import create_app
from async_service.settings import Settings
from services import WORKER_READY


async def app() -> web.Application:
    """The service configured from the environment, which says when this worker is ready."""
    service = create_app(Settings.from_env())
    service.on_startup.append(_say_ready)
    return service


async def _say_ready(app: web.Application) -> None:
    print(f"{WORKER_READY} (pid {os.getpid()})", flush=True)
