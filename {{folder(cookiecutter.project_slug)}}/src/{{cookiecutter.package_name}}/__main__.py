"""Run the service: `python -m {{ cookiecutter.package_name }}` (or the `{{ cookiecutter.project_slug }}` command)."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from .app import create_app
from .limits import raise_open_files_limit
from .logs import configure_logging
from .loop import loop_name, new_event_loop
from .settings import Settings, SettingsError
{%- if cookiecutter.database != "none" %}
from .store_{{ cookiecutter.database }} import DatabaseUnavailable
{%- endif %}

log = logging.getLogger("{{ cookiecutter.package_name }}")


def main() -> None:
    """Serve on HOST:PORT until SIGINT or SIGTERM, then shut down gracefully."""
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.exit(f"{{ cookiecutter.package_name }}: {error}")
    configure_logging(settings)
    raise_open_files_limit()
    loop = new_event_loop()

    def announce(_: str) -> None:  # run_app calls this once the socket is listening
        log.info("serving on http://%s:%d (loop: %s); Ctrl-C stops", settings.host, settings.port, loop_name(loop))

    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            loop=loop,
            access_log=None,
            print=announce,
            shutdown_timeout=10.0,
        )
    except {% if cookiecutter.database != "none" %}(DatabaseUnavailable, OSError){% else %}OSError{% endif %} as error:
        sys.exit(f"{{ cookiecutter.package_name }}: cannot start: {error}")
    log.info("stopped")


if __name__ == "__main__":
    main()
