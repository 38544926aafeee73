"""Run the service: `python -m {{ cookiecutter.package_name }}` (or the `{{ cookiecutter.project_slug }}` command)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web

from .app import create_app, set_aside_for_good
from .items import StoreUnavailable
from .limits import raise_open_files_limit
from .logs import configure_logging
from .loop import loop_name, new_event_loop
from .settings import Settings, SettingsError

log = logging.getLogger("{{ cookiecutter.package_name }}")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_first_signal(loop: asyncio.AbstractEventLoop) -> None:
    """Let SIGINT or SIGTERM start a graceful shutdown, and ignore every such signal after it.

    A process manager (or GNU `timeout`) may send SIGTERM twice: the second must not cut the shutdown short.
    Where the loop takes no signal handlers (Windows), Ctrl-C stops the service as a KeyboardInterrupt.
    """

    def stop() -> None:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)  # else closing the loop would restore the default: exit at once
            signal.signal(number, signal.SIG_IGN)
        raise web.GracefulExit

    with contextlib.suppress(NotImplementedError):
        for number in STOP_SIGNALS:
            loop.add_signal_handler(number, stop)


def main() -> None:
    """Serve on HOST:PORT until SIGINT or SIGTERM, then shut down gracefully."""
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.exit(f"{{ cookiecutter.package_name }}: {error}")
    configure_logging(settings)
    raise_open_files_limit()
    loop = new_event_loop()
    stop_on_first_signal(loop)

    def announce(_: str) -> None:  # run_app calls this once the socket is listening
        log.info("serving on http://%s:%d (loop: %s); Ctrl-C stops", settings.host, settings.port, loop_name(loop))

    try:
        app = create_app(settings)
        set_aside_for_good()
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            loop=loop,
            access_log=None,
            print=announce,
            shutdown_timeout=10.0,
            handle_signals=False,  # stop_on_first_signal handles them
        )
    except (StoreUnavailable, OSError) as error:
        sys.exit(f"{{ cookiecutter.package_name }}: cannot start: {error}")
    log.info("stopped")


if __name__ == "__main__":
    main()
