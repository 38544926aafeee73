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
from dataclasses import dataclass, field

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
    """A running service process, where it listens, and what it has written to stderr so far."""

    process: asyncio.subprocess.Process
    url: str
    said: bytearray = field(default_factory=bytearray, init=False)
    # What the process writes to stderr once it listens at `url`: an answer there before it may be another's.
    announces: str = field(default="serving on {url}", kw_only=True)

    async def announced(self) -> None:
        """Read stderr up to the line saying the process listens at `url`; fail, quoting it, if it exits first."""
        assert self.process.stderr is not None
        announcement = self.announces.format(url=self.url).encode()
        while announcement not in (line := await self.process.stderr.readline()):
            if not line:
                await self.process.wait()
                said = self.said.decode()
                raise AssertionError(f"the service exited with {self.process.returncode} before answering: {said}")
            self.said += line
        self.said += line

    async def output(self) -> str:
        """Wait for the process to exit and return everything it wrote to stderr."""
        async with asyncio.timeout(STOP_TIMEOUT):
            _, rest = await self.process.communicate()
        return (self.said + rest).decode()

    async def stop(self) -> str:
        """Send SIGTERM, wait for the exit, and return everything it wrote to stderr."""
        self.process.send_signal(signal.SIGTERM)
        return await self.output()


async def launch(
    env: Mapping[str, str], command: Sequence[str] = SERVICE, open_files: int | None = None
) -> asyncio.subprocess.Process:
    """Start `python -m <command>` (the service's own by default) with `env` on top of this environment.

    `open_files`, when given, is its soft limit on open files (POSIX).
    """

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
    """A service on 127.0.0.1:`port`, answering /health; killed at exit if still running.

    `open_files` is as for `launch`.
    """
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
    """The lines of a process's stderr, less the notes of asyncio's debug mode.

    A busy runner makes slow steps of start-up; the asyncio loop notes its server and its idle polls.
    """
    return [line for line in stderr.decode().strip().splitlines() if not DEBUG_MODE_NOTE.search(line)]


async def wait_until_healthy(service: Service) -> None:
    """Wait for the process to say it listens, then poll /health until it answers 200; fail if it exits first.

    Polling alone could take the answer of another test's service: on a busy machine two runs may be handed the
    same free port, and the second to start then exits while the first answers.
    """
    async with aiohttp.ClientSession() as session, asyncio.timeout(START_TIMEOUT):
        await service.announced()
        while service.process.returncode is None:
            try:
                async with session.get(f"{service.url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"the service exited with {service.process.returncode} before answering")
