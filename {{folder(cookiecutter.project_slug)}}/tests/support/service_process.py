"""Run the service as a real process, the way `python -m {{ cookiecutter.package_name }}` does."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
SERVICE = ("{{ cookiecutter.package_name }}",)
# asyncio's debug mode (on under PYTHONDEVMODE) notes any step over 0.1 s, a server that starts serving and a poll
# over 1 s: text or JSON lines.
DEBUG_MODE_NOTE = re.compile(
    r'WARNING asyncio: Executing .* took \d+\.\d+ seconds$| INFO asyncio: |"level": "INFO", "logger": "asyncio"'
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


async def launch(
    env: Mapping[str, str], command: Sequence[str] = SERVICE, open_files: int | None = None
) -> asyncio.subprocess.Process:
    """Start `python -m <command>` (the service's own by default) with `env` on top of this environment, and with
    `open_files` as its soft limit on open files when given (POSIX)."""

    def limit(soft: int) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *command,
        env={**os.environ, "PYTHONDEVMODE": "1", **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=None if open_files is None else functools.partial(limit, open_files),
    )


@asynccontextmanager
async def running_service(port: int, env: Mapping[str, str], open_files: int | None = None) -> AsyncIterator[Service]:
    """A service on 127.0.0.1:`port`, answering /health (`open_files`: as for `launch`); killed at exit if still
    running."""
    process = await launch({"HOST": "127.0.0.1", "PORT": str(port), **env}, open_files=open_files)
    service = Service(process, f"http://127.0.0.1:{port}")
    try:
        await wait_until_healthy(service)
        yield service
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def lines_said(stderr: bytes) -> list[str]:
    """The lines of a process's stderr, less the notes of asyncio's debug mode (a busy runner makes slow steps of
    start-up; the asyncio loop notes its server and its idle polls)."""
    return [line for line in stderr.decode().strip().splitlines() if not DEBUG_MODE_NOTE.search(line)]


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
