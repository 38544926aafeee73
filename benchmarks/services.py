"""Servers under test: start a process on a free local port, wait until it answers, stop it."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
WORKER_READY = "benchmark worker ready"  # what gunicorn_app.py prints once per worker


class ServiceError(RuntimeError):
    """A server did not start, or answered something unexpected."""


@dataclass
class Service:
    """A server process to benchmark; `label` names it in the results."""

    label: str
    command: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    port: int = 0
    ready_marker: str = ""  # when set, also wait until the log holds it `ready_count` times (one per worker)
    ready_count: int = 1
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def url(self, path: str) -> str:
        """The full URL of `path` on this server."""
        return f"http://{HOST}:{self.port}{path}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def request(service: Service, method: str, path: str, body: object = None) -> tuple[int, object]:
    """One HTTP request; the status and the decoded JSON body (None when empty)."""
    connection = http.client.HTTPConnection(HOST, service.port, timeout=5)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        connection.close()


def start(service: Service, logs: Path) -> None:
    """Launch the process with HOST/PORT set and its output in a log file."""
    service.port = free_port()
    service.log = logs / f"{service.label.replace(' ', '_').replace('/', '_')}.log"
    env = {**os.environ, **service.env, "HOST": HOST, "PORT": str(service.port)}
    command = [part.replace("{port}", str(service.port)) for part in service.command]
    with service.log.open("wb") as log:
        service.process = subprocess.Popen(command, env=env, cwd=service.cwd, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(service: Service, timeout: float = START_TIMEOUT) -> None:
    """Poll GET /health until it answers 200; raise with the log's end if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process is None or service.process.poll() is not None:
            raise ServiceError(f"{service.label} exited before answering:\n{log_tail(service)}")
        if _answers(service) and _all_workers_ready(service):
            return
        time.sleep(0.05)
    raise ServiceError(f"{service.label} did not answer /health within {timeout:.0f} s:\n{log_tail(service)}")


def _answers(service: Service) -> bool:
    try:
        return request(service, "GET", "/health")[0] == 200
    except OSError:
        return False


def _all_workers_ready(service: Service) -> bool:
    if not service.ready_marker or service.log is None:
        return True
    return service.log.read_text(encoding="utf-8", errors="replace").count(service.ready_marker) >= service.ready_count


def stop(service: Service) -> None:
    """SIGTERM (every server here shuts down gracefully on it), then SIGKILL if it lingers."""
    process = service.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def log_tail(service: Service, lines: int = 20) -> str:
    """The last lines the server printed."""
    if service.log is None or not service.log.exists():
        return "(no log)"
    return "\n".join(service.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@contextmanager
def running(services: list[Service], logs: Path) -> Iterator[list[Service]]:
    """Start every service, wait until each answers, and stop them all on the way out."""
    try:
        for service in services:
            start(service, logs)
        for service in services:
            wait_healthy(service)
        yield services
    finally:
        for service in services:
            stop(service)
