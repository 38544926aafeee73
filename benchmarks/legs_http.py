"""Legs 1 to 3: throughput and latency of the baked service, a bare aiohttp app, FastAPI and gunicorn."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import services
from common import HERE, Config, bake
from figures import Results, Throughput, ratio
from loadgen import LoadSettings, run_wrk
from services import Service

PATHS = ("/health", "/items/1")
ITEM = {"name": "bench", "quantity": 1}
LOOPS = ("uvloop", "asyncio")
WORKER_CLASSES = {"uvloop": "aiohttp.GunicornUVLoopWebWorker", "asyncio": "aiohttp.GunicornWebWorker"}


@dataclass
class Subject:
    """A server in a throughput leg, and how the results name it."""

    leg: int
    server: str
    loop: str
    service: Service
    seeded: bool = False


def baked_service(config: Config, loop: str) -> Subject:
    """`python -m async_service` from the bake for `loop`, on a SQLite file of its own."""
    project = bake(config, loop, "sqlite")
    env = {"PYTHONPATH": str(project / "src"), "DATABASE_URL": f"sqlite:///{config.work / f'{loop}.db'}"}
    service = Service(f"baked {loop}", [sys.executable, "-m", "async_service"], env=env)
    return Subject(1, "baked service", loop, service, seeded=True)


def bare_app(loop: str) -> Subject:
    """The bare aiohttp app on `loop`."""
    service = Service(f"bare {loop}", [sys.executable, str(HERE / "bare_app.py"), loop])
    return Subject(1, "bare aiohttp", loop, service)


def fastapi_app() -> Subject:
    """FastAPI under uvicorn with uvloop and httptools, without an access log."""
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--host", services.HOST, "--port", "{port}"]
    command += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return Subject(2, "FastAPI + uvicorn", "uvloop", Service("fastapi", command, cwd=HERE))


def gunicorn_app(config: Config, loop: str, workers: int) -> Subject:
    """The baked service under gunicorn with aiohttp's worker for `loop`, on that loop's SQLite file.

    Leg 1 has already migrated and seeded that file: workers migrating a fresh file at once can race.
    """
    project = bake(config, loop, "sqlite")
    command = [sys.executable, "-m", "gunicorn", "gunicorn_app:app", "--bind", f"{services.HOST}:{{port}}"]
    command += ["--workers", str(workers), "--worker-class", WORKER_CLASSES[loop], "--graceful-timeout", "5"]
    command += ["--no-control-socket"]  # four arbiters run at once; by default they share ~/.gunicorn/gunicorn.ctl
    env = {
        "PYTHONPATH": os.pathsep.join([str(project / "src"), str(HERE)]),
        "DATABASE_URL": f"sqlite:///{config.work / f'{loop}.db'}",
    }
    label = f"gunicorn {loop} {workers}w"
    service = Service(label, command, env=env, ready_marker=services.WORKER_READY, ready_count=workers)
    return Subject(3, f"gunicorn, {workers} worker{'s' if workers > 1 else ''}", loop, service)


def http_legs(config: Config, results: Results) -> None:
    """Legs 1 and 2: baked vs bare on both loops, and FastAPI; all servers up at once, runs interleaved."""
    print("== legs 1-2: baked service, bare aiohttp, FastAPI", flush=True)
    subjects = [baked_service(config, loop) for loop in LOOPS] + [bare_app(loop) for loop in LOOPS]
    if not config.missing & {"fastapi", "uvicorn"}:
        subjects.append(fastapi_app())
    found = measure(config, subjects)
    results.throughputs += found.values()
    add_http_ratios(results, found)


def gunicorn_leg(config: Config, results: Results) -> None:
    """Leg 3: the baked service under gunicorn, 1 and 2 workers, with each of aiohttp's worker classes."""
    if "gunicorn" in config.missing:
        return
    print("== leg 3: gunicorn", flush=True)
    subjects = [gunicorn_app(config, loop, workers) for loop in LOOPS for workers in (1, 2)]
    found = measure(config, subjects)
    results.throughputs += found.values()
    for loop in LOOPS:
        for path in PATHS:
            two, one = found[(f"gunicorn {loop} 2w", path)], found[(f"gunicorn {loop} 1w", path)]
            results.ratios.append(ratio(f"gunicorn {WORKER_CLASSES[loop]} `{path}`: 2 workers / 1 worker", two, one))


def add_http_ratios(results: Results, found: dict[tuple[str, str], Throughput]) -> None:
    """The targets (baked vs bare, uvloop vs asyncio) and the FastAPI comparison."""
    for loop in LOOPS:
        for path in PATHS:
            target = 0.90 if path == "/health" else None
            label = f"baked / bare aiohttp, {loop}, `{path}`"
            results.ratios.append(ratio(label, found[(f"baked {loop}", path)], found[(f"bare {loop}", path)], target))
    for server in ("baked", "bare"):
        for path in PATHS:
            target = 1.15 if server == "baked" and path == "/health" else None
            label = f"{server}: uvloop / asyncio, `{path}`"
            results.ratios.append(
                ratio(label, found[(f"{server} uvloop", path)], found[(f"{server} asyncio", path)], target)
            )
    if ("fastapi", "/health") in found:
        for server in ("bare", "baked"):
            for path in PATHS:
                label = f"{server} aiohttp (uvloop) / FastAPI + uvicorn, `{path}`"
                results.ratios.append(ratio(label, found[(f"{server} uvloop", path)], found[("fastapi", path)]))


def measure(config: Config, subjects: list[Subject]) -> dict[tuple[str, str], Throughput]:
    """Start every subject, check they answer alike, then wrk each path round by round."""
    found = {(s.service.label, path): Throughput(s.leg, s.server, s.loop, path) for s in subjects for path in PATHS}
    by_label = {subject.service.label: subject.service for subject in subjects}
    with services.running(list(by_label.values()), config.work / "logs"):
        for subject in subjects:
            if subject.seeded:
                seed(subject.service)
        check_same_answers(subjects)
        if config.warmup:
            for label, path in found:
                run_wrk(config.wrk, by_label[label].url(path), LoadSettings(1, config.load.connections, 1))
        keys = list(found)
        for run in range(config.runs):
            shift = run % len(keys)  # rotate the order so no server always goes first
            for label, path in keys[shift:] + keys[:shift]:
                one_load(config, found[(label, path)], by_label[label], run)
    return found


def seed(service: Service) -> None:
    """Create the benchmark's item through the API (item 1 of a fresh database)."""
    status, body = services.request(service, "POST", "/items", ITEM)
    if status != 201 or not isinstance(body, dict) or body.get("id") != 1:
        raise services.ServiceError(f"{service.label}: POST /items answered {status} {body!r}, expected 201 and id 1")


def check_same_answers(subjects: list[Subject]) -> None:
    """Every server must send the same JSON for each path, or the comparison means nothing."""
    for path in PATHS:
        answers = {s.service.label: services.request(s.service, "GET", path) for s in subjects}
        if len({json.dumps(answer, sort_keys=True) for answer in answers.values()}) != 1:
            raise services.ServiceError(f"the servers answer {path} differently: {answers}")


def one_load(config: Config, throughput: Throughput, service: Service, run: int) -> None:
    """One wrk run of one path of one server, recorded and printed."""
    load = run_wrk(config.wrk, service.url(throughput.path), config.load)
    throughput.loads.append(load)
    print(
        f"  {service.label:<20} {throughput.path:<9} run {run + 1}/{config.runs}: {load.rps:>9,.0f} req/s"
        f"  p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms",
        flush=True,
    )
