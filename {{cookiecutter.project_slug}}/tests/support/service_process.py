"""Run the service as a real process: `python -m {{ cookiecutter.package_name }}`, or gunicorn as the README shows."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
SERVICE = ("{{ cookiecutter.package_name }}",)
# The README's gunicorn command, less its --bind.
GUNICORN = (
    "gunicorn",
    "{{ cookiecutter.package_name }}.app:create_app_from_env()",
    "--worker-class",
    "aiohttp.{% if cookiecutter.event_loop == "uvloop" %}GunicornUVLoopWebWorker{% else %}GunicornWebWorker{% endif %}",
    "--workers",
    "2",
)


@dataclass
class Service:
    """A running service process and where it listens."""

    process: asyncio.subprocess.Process
    url: str

    async def stop(self) -> str:
        """Send SIGTERM, wait for the exit, and return everything it wrote to stderr."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_TIMEOUT):
            _, stderr = await self.process.communicate()
        return stderr.decode()


@dataclass
class Gunicorn(Service):
    """gunicorn's master process, where it listens, and its access log: `<worker pid> <request line> <status>`."""

    access_log: Path

    async def worker_of(self, session: aiohttp.ClientSession) -> str:
        """The pid of the worker holding `session`'s connection (give it a connector with limit=1: a websocket
        opened next in `session` then reuses that connection, and so that worker)."""
        probe = f"probe={uuid.uuid4().hex}"
        async with session.get(f"{self.url}/health?{probe}") as response:
            assert response.status == 200
        async with asyncio.timeout(STOP_TIMEOUT):  # the worker writes the line once it has answered
            while True:
                lines = (await asyncio.to_thread(self.access_log.read_text)).splitlines()
                for line in lines:
                    if probe in line:
                        return line.split()[0]
                await asyncio.sleep(0.02)


async def launch(env: Mapping[str, str], command: Sequence[str] = SERVICE) -> asyncio.subprocess.Process:
    """Start `python -m <command>` (the service's own by default) with `env` on top of this environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *command,
        env={**os.environ, "PYTHONDEVMODE": "1", **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def running_service(port: int, env: Mapping[str, str]) -> AsyncIterator[Service]:
    """A service on 127.0.0.1:`port`, answering /health; killed at exit if still running."""
    process = await launch({"HOST": "127.0.0.1", "PORT": str(port), **env})
    service = Service(process, f"http://127.0.0.1:{port}")
    try:
        await wait_until_healthy(service)
        yield service
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@asynccontextmanager
async def running_gunicorn(port: int, env: Mapping[str, str], access_log: Path) -> AsyncIterator[Gunicorn]:
    """The README's gunicorn command (2 workers) on 127.0.0.1:`port`, answering /health; stopped at exit."""
    process = await launch(
        env,
        [
            *GUNICORN,
            *("--bind", f"127.0.0.1:{port}", "--no-control-socket"),  # no control socket in the home folder
            *("--access-logfile", str(access_log), "--access-logformat", "%P %r %s"),  # aiohttp's format letters
        ],
    )
    service = Gunicorn(process, f"http://127.0.0.1:{port}", access_log)
    try:
        await wait_until_healthy(service)
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


async def wait_until_healthy(service: Service) -> None:
    """Poll /health until it answers 200; fail if the process exits first."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(START_TIMEOUT):
        while service.process.returncode is None:
            try:
                async with session.get(f"{service.url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"the service exited with {service.process.returncode} before answering")
