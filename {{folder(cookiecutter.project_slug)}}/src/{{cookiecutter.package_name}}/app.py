"""The application factory: the one place where the service is put together."""

from __future__ import annotations

import gc
import sys

from aiohttp import web

from .events import hub_context, shutdown_hub
from .items import ItemStore
from .keys import SETTINGS, STORE
from .limits import raise_open_files_limit
from .logs import access_log, configure_logging
from .routes import add_routes
from .settings import Settings, SettingsError
from .{{ "store_memory" if cookiecutter.database == "none" else "store_" ~ cookiecutter.database }} import store_context
from .upstream import upstream_context

WORKER_BOOT_ERROR = 3  # gunicorn's exit code for a worker that cannot start
YOUNG_OBJECTS_PER_COLLECTION = 2000  # CPython 3.13's default; 3.11 and 3.12 collect every 700


def create_app(settings: Settings, store: ItemStore | None = None) -> web.Application:
    """Build the service; pass `store` to use it instead of opening the configured one."""
    # aiohttp closes a connection that has sent no whole request for keepalive_timeout seconds, from its start and
    # after each answer: the bound on a client that sends its headers slowly (or never), and on idle keep-alive.
    handler_args = {**access_log(settings), "keepalive_timeout": settings.keepalive_timeout}
    app = web.Application(client_max_size=settings.max_body_bytes, handler_args=handler_args)
    app[SETTINGS] = settings
    if store is None:
        app.cleanup_ctx.append(store_context)
    else:
        app[STORE] = store
    app.cleanup_ctx.append(hub_context)
    app.cleanup_ctx.append(upstream_context)
    app.on_shutdown.append(shutdown_hub)
    add_routes(app)
    return app


def create_app_from_env() -> web.Application:
    """The service configured from the environment, for process managers (gunicorn's aiohttp workers).

    A bad setting is one line on stderr, then exit code 3, which tells gunicorn the worker cannot boot: it stops
    instead of restarting it over and over, each time with a traceback.
    """
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"{{ cookiecutter.package_name }}: {error}", file=sys.stderr)
        raise SystemExit(WORKER_BOOT_ERROR) from None
    configure_logging(settings)
    raise_open_files_limit()
    app = create_app(settings)
    set_aside_for_good()
    return app


def set_aside_for_good() -> None:
    """Put every object made so far (the modules, the app, its routes) out of the garbage collector's sight.

    They live as long as the process, yet each full collection would walk them all (some 38,000) while every request
    in flight waits. Called once the app is built, by `python -m` and by gunicorn's entry point.

    The youngest objects are collected once 2,000 more are alive, not 700: with 50 requests in flight, 700 was
    crossed every hundred requests or so, and each collection walked the objects of every request in flight.
    """
    gc.freeze()
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_OBJECTS_PER_COLLECTION), *older)
