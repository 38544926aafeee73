"""Run the service under gunicorn with two workers, as the README shows, and tell which worker serves whom."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .service_process import START_TIMEOUT, STOP_TIMEOUT, Service, launch, wait_until_healthy

# The README's gunicorn command, less its --bind.
GUNICORN = (
    "gunicorn",
    "{{ cookiecutter.package_name }}.app:create_app_from_env()",
    "--worker-class",
    "aiohttp.{% if cookiecutter.event_loop == "uvloop" %}GunicornUVLoopWebWorker{% else %}GunicornWebWorker{% endif %}",
    "--workers",
    "2",
)
LISTENING = "Listening at: {url}"  # what gunicorn writes to stderr once it listens at url


@dataclass
class Gunicorn(Service):
    """gunicorn's master process, where it listens, and its access log: `<worker pid> <request line> <status> <id>`."""

    access_log: Path
    announces: str = field(default=LISTENING, kw_only=True)

    async def wait_for_workers(self, count: int) -> None:
        """Return once `count` different workers have answered.

        Each boots on its own, one later than another on a busy machine, and until then the first takes every
        connection.
        """
        answered: set[str] = set()
        async with asyncio.timeout(START_TIMEOUT):
            while len(answered) < count:
                async with aiohttp.ClientSession() as session:  # a new connection, so any worker may take it
                    answered.add(await self.worker_of(session))

    async def worker_of(self, session: aiohttp.ClientSession) -> str:
        """The pid of the worker holding `session`'s connection.

        Give `session` a connector with limit=1: a websocket opened next in it then reuses that connection, and so
        that worker.
        """
        probe = uuid.uuid4().hex
        async with session.get(f"{self.url}/health", headers={"X-Request-ID": probe}) as response:
            assert response.status == 200
        async with asyncio.timeout(STOP_TIMEOUT):  # the worker writes the line once it has answered
            while True:
                lines = (await asyncio.to_thread(self.access_log.read_text)).splitlines()
                for line in lines:
                    if line.endswith(f" {probe}"):
                        return line.split()[0]
                await asyncio.sleep(0.02)


@asynccontextmanager
async def running_gunicorn(port: int, env: Mapping[str, str], access_log: Path) -> AsyncIterator[Gunicorn]:
    """The README's gunicorn command (2 workers) on 127.0.0.1:`port`, answering /health; stopped at exit."""
    process = await launch(
        {"ACCESS_LOG": "off", **env},  # the service's own access log off: gunicorn's, in a file, applies
        [
            *GUNICORN,
            *("--bind", f"127.0.0.1:{port}", "--no-control-socket"),  # no control socket in the home folder
            *("--access-logfile", str(access_log), "--access-logformat", "%P %r %s %{X-Request-ID}o"),  # aiohttp's
        ],
    )
    service = Gunicorn(process, f"http://127.0.0.1:{port}", access_log)
    try:
        await wait_until_healthy(service)
        await service.wait_for_workers(2)
        yield service
    finally:
        if process.returncode is None:
            process.terminate()  # not SIGKILL: that would leave the workers running
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
