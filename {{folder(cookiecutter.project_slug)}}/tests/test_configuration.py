"""Configuration, as an operator meets it: settings from the environment, the log format, the gunicorn entry point.

`configure_logging` replaces the root logger's handlers, as a service should at start-up; the `root_logger`
fixture puts pytest's back afterwards, so the tests after these still capture logs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient

from {{ cookiecutter.package_name }}.__main__ import main
from {{ cookiecutter.package_name }}.app import create_app, create_app_from_env
from {{ cookiecutter.package_name }}.items import ItemStore
from {{ cookiecutter.package_name }}.keys import SETTINGS, UPSTREAM
from {{ cookiecutter.package_name }}.logs import ACCESS_FIELDS, SERVER_LOGGERS, configure_logging
from {{ cookiecutter.package_name }}.settings import Settings, SettingsError

from .support.clients import ClientFactory
from .test_logs import send_malformed_request

PROJECT = Path(__file__).parent.parent
NOT_A_VALUE = "?"  # no variable with a rule takes it: the error states the rule
NUMBER_RULE = re.compile(r"(?P<name>\w+) must be a number from (?P<low>\S+) to (?P<high>\S+), got '\?'")
CHOICE_RULE = re.compile(r"(?P<name>\w+) must be one of (?P<options>.+), got '\?'")
HOST_RULE = "HOST must be an IP address or a host name, got '?'"
NUMBERS = [field.name.upper() for field in dataclasses.fields(Settings) if field.type in ("int", "float")]
# What gunicorn's aiohttp worker gives its AppRunner (aiohttp/worker.py), with `--access-logfile` set and its own
# default keep-alive: the app's handler_args must win where the service has a setting of its own.
GUNICORN_RUNNER: dict[str, Any] = {
    "keepalive_timeout": 2.0,
    "access_log": logging.getLogger("gunicorn.access"),
    "access_log_format": '%a "%r" %s %b %Tf %{X-Request-ID}o',
}
PROBE = {"X-Request-ID": "probe-gunicorn"}


def readme_variables() -> list[str]:
    """The variables the README's configuration table lists, in the first column of its rows."""
    rows = (PROJECT / "README.md").read_text(encoding="utf-8").splitlines()
    cells = [row.split("|")[1] for row in rows if row.startswith("| `")]
    return [name for cell in cells for name in re.findall(r"`([A-Z][A-Z_]*)`", cell)]


VARIABLES = readme_variables()
Environ = Callable[[dict[str, str]], None]  # the `environ` fixture


def stated_rule(name: str) -> str:
    """What `name` says of a value it cannot use; "" for free text (a URL), which it takes as it is."""
    try:
        Settings.from_env({name: NOT_A_VALUE})
    except SettingsError as error:
        return str(error)
    return ""


def valid_values(name: str) -> list[str]:
    """Values `name` accepts by the rule it states: a number's bounds, a choice's options, any text if no rule."""
    rule = stated_rule(name)
    if number := NUMBER_RULE.fullmatch(rule):
        return [number["low"], number["high"]]
    if choice := CHOICE_RULE.fullmatch(rule):
        return choice["options"].split(", ")
    if rule == HOST_RULE:
        return ["0.0.0.0", "service-1.internal"]
    assert not rule, f"a rule this test does not know: {rule}"
    return ["a value of its own"]


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Environ:
    """Function scope: `environ({...})` makes those the only service variables set, as a process would see them."""

    def set_only(env: dict[str, str]) -> None:
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return set_only


def start_as_python_m(monkeypatch: pytest.MonkeyPatch) -> web.Application:
    """`python -m`'s start-up up to serving: `main`, with web.run_app handing back the app it was given."""
    served: list[web.Application] = []

    def run_app(app: web.Application, *, loop: asyncio.AbstractEventLoop, **_: object) -> None:
        served.append(app)
        loop.close()

    monkeypatch.setattr(web, "run_app", run_app)
    main()
    [app] = served
    return app


async def started_as_gunicorn_does(aiohttp_client: AiohttpClient, app: web.Application) -> TestServer:
    """`app` served with the runner arguments gunicorn's worker passes; a client for it is made and closed too."""
    server = TestServer(app)
    await server.start_server(**GUNICORN_RUNNER)  # TestServer(app, **kwargs) would not pass them on
    await aiohttp_client(server)
    return server


START = {"gunicorn": lambda _: create_app_from_env(), "python -m": start_as_python_m}
Start = Callable[[pytest.MonkeyPatch], web.Application]


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Give the collector back what a start set aside for good, the tests' objects among it, and its thresholds."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.parametrize("host", ["0.0.0.0", "::1", "localhost", "service-1.internal", "10.0.0.7"])
def test_a_host_may_be_an_address_or_a_name(host: str) -> None:
    assert Settings.from_env({"HOST": host}).host == host


@pytest.mark.parametrize("name", VARIABLES)
def test_every_variable_in_the_readme_is_read_into_its_own_setting_and_no_other(name: str) -> None:
    defaults = dataclasses.asdict(Settings())

    changed = {
        field
        for value in valid_values(name)
        for field, setting in dataclasses.asdict(Settings.from_env({name: value})).items()
        if setting != defaults[field]
    }

    assert changed == {name.lower()}


@pytest.mark.parametrize("name", NUMBERS)
def test_a_number_is_taken_at_its_stated_bounds(name: str) -> None:
    rule = NUMBER_RULE.fullmatch(stated_rule(name))
    assert rule, f"{name} states no bounds"
    kind = type(getattr(Settings(), name.lower()))

    for bound in (rule["low"], rule["high"]):
        assert getattr(Settings.from_env({name: bound}), name.lower()) == kind(bound)
    assert kind(rule["low"]) <= getattr(Settings(), name.lower()) <= kind(rule["high"])


@pytest.mark.parametrize("name", NUMBERS)
def test_a_number_one_past_its_bounds_zero_or_negative_is_refused_saying_its_rule(name: str) -> None:
    rule = NUMBER_RULE.fullmatch(stated_rule(name))
    assert rule, f"{name} states no bounds"
    whole = isinstance(getattr(Settings(), name.lower()), int)  # ports and bytes; the rest are seconds
    low, high = (int if whole else float)(rule["low"]), (int if whole else float)(rule["high"])
    below, above = (low - 1, high + 1) if whole else (low / 2, high + low)

    for value in [str(below), str(above), "0", "-1", *([f"{low}.5"] if whole else [])]:
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({name: value})
        assert str(refused.value) == f"{name} must be a number from {rule['low']} to {rule['high']}, got {value!r}"


def declared() -> list[tuple[str, str, str]]:
    """Each setting's variable, default as written in the environment, and meaning, from its declaration."""
    return [
        (field.name.upper(), field.metadata["rule"].show(field.default), field.metadata["meaning"])
        for field in dataclasses.fields(Settings)
    ]


def test_the_readme_table_says_what_each_setting_declares() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    rows = readme.partition("| variable | default | meaning |\n|---|---|---|\n")[2].partition("\n\n")[0]
    table = [re.fullmatch(r"\| `(\w+)` \| `(.*)` \| (.*) \|", row) for row in rows.splitlines()]

    assert [match.groups() if match else None for match in table] == declared()


def test_the_env_example_sets_each_setting_to_its_default() -> None:
    lines = (PROJECT / ".env.example").read_text(encoding="utf-8").splitlines()
    example = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
{%- if cookiecutter.database == "postgresql" %}
    example.pop("TEST_DATABASE_URL")  # the tests' database: not a setting of the service
{%- endif %}

    assert example == {name: default for name, default, _ in declared()}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "0"}, "PORT must be a number from 1 to 65535, got '0'"),
        ({"PORT": "65536"}, "PORT must be a number from 1 to 65535, got '65536'"),
        ({"UPSTREAM_TIMEOUT": "soon"}, "UPSTREAM_TIMEOUT must be a number from 0.001 to 600, got 'soon'"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES must be a number from 1 to 1073741824, got '0'"),
        ({"UPSTREAM_MAX_BYTES": "1e6"}, "UPSTREAM_MAX_BYTES must be a number from 1 to 1073741824, got '1e6'"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
        ({"HOST": "999.1.1.1"}, "HOST must be an IP address or a host name, got '999.1.1.1'"),
        ({"HOST": "my_host"}, "HOST must be an IP address or a host name, got 'my_host'"),
{%- if cookiecutter.database != "none" %}
        ({"DATABASE_TIMEOUT": "0"}, "DATABASE_TIMEOUT must be a number from 0.1 to 600, got '0'"),
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
        ({"DATABASE_POOL_TIMEOUT": "-1"}, "DATABASE_POOL_TIMEOUT must be a number from 0.1 to 600, got '-1'"),
{%- endif %}
    ],
    ids=[
        *("port-zero", "port-too-high", "timeout-not-a-number", "no-body-allowed", "upstream-bytes-not-an-int"),
        *("unknown-level", "ip-typo", "host"),
{%- if cookiecutter.database != "none" %}
        "database-timeout-zero",
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
        "pool-timeout-negative",
{%- endif %}
    ],
)
def test_a_bad_value_is_refused_with_its_variable_and_the_rule(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


def test_json_logs_are_one_object_per_line_with_the_traceback_inside(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format="json", log_level="INFO"))
    log = logging.getLogger("{{ cookiecutter.package_name }}.handlers")

    log.debug("not at INFO")
    log.info("created item %d", 7)
    try:
        raise ValueError("the disk is full")
    except ValueError:
        log.exception("could not store item %d", 8)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["level"], line["logger"], line["message"]) for line in lines] == [
        ("INFO", "{{ cookiecutter.package_name }}.handlers", "created item 7"),
        ("ERROR", "{{ cookiecutter.package_name }}.handlers", "could not store item 8"),
    ]
    assert "exception" not in lines[0]
    assert lines[1]["exception"].startswith("Traceback")
    assert "ValueError: the disk is full" in lines[1]["exception"]


def test_a_bad_setting_under_gunicorn_is_one_line_and_stops_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "eighty")

    with pytest.raises(SystemExit) as stopped:
        create_app_from_env()

    assert stopped.value.code == 3  # gunicorn: the worker cannot boot, so stop rather than restart it
    said = capsys.readouterr().err
    assert said.endswith(": PORT must be a number from 1 to 65535, got 'eighty'\n")
    assert said.count("\n") == 1


@pytest.mark.parametrize("start", START.values(), ids=START.keys())
def test_both_ways_to_start_read_the_environment_and_set_up_logging(
    root_logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environ: Environ,
    start: Start,
) -> None:
    """Each step `python -m` takes before serving, gunicorn's entry point takes too.

    The steps: settings, format, level, and a client's malformed request made a DEBUG line on every logger a server
    reports it on.
    """
    env = {"UPSTREAM_TIMEOUT": "2.5", "KEEPALIVE_TIMEOUT": "30", "ACCESS_LOG": "off"}
    environ({**env, "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"})

    app = start(monkeypatch)
    logging.getLogger("{{ cookiecutter.package_name }}.handlers").debug("probe")
    for name in SERVER_LOGGERS:
        try:
            raise BadHttpMessage("Invalid character in Content-Length:\n\n  b'abc'\n   ^")
        except BadHttpMessage:
            logging.getLogger(name).exception("Error handling request from %s", "127.0.0.1")

    assert app[SETTINGS] == Settings.from_env({**env, "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"})
    said = [json.loads(line) for line in capsys.readouterr().err.splitlines()][-3:]
    malformed = "Error handling request from 127.0.0.1: Invalid character in Content-Length"
    assert [(line["level"], line["logger"], line["message"], "exception" in line) for line in said] == [
        ("DEBUG", "{{ cookiecutter.package_name }}.handlers", "probe", False),
        *(("DEBUG", name, malformed, False) for name in SERVER_LOGGERS),
    ]


@pytest.mark.parametrize("start", START.values(), ids=START.keys())
def test_both_ways_to_start_set_the_app_out_of_the_collectors_sight(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, environ: Environ, start: Start
) -> None:
    """What lives as long as the process (the app, its routes, the modules) is frozen before the first request.

    A full collection under load then walks only what requests made, not the 38,000 objects of the start.
    """
    environ({})

    app = start(monkeypatch)

    assert gc.get_freeze_count() > 0
    assert not any(tracked is app for tracked in gc.get_objects())  # frozen objects are left out


@pytest.mark.parametrize("start", START.values(), ids=START.keys())
def test_both_ways_to_start_collect_young_objects_less_often_than_python_3_11_does(
    monkeypatch: pytest.MonkeyPatch, environ: Environ, start: Start
) -> None:
    """Python 3.11's threshold of 700 new objects is raised to 3.13's 2,000, and a higher one is kept.

    Under load, 700 is crossed every hundred requests or so, by the objects of the requests in flight alone.
    """
    environ({})
    gc.set_threshold(700, 10, 10)
    start(monkeypatch)
    assert gc.get_threshold() == (2000, 10, 10)

    gc.set_threshold(5000, 20, 30)
    start(monkeypatch)
    assert gc.get_threshold() == (5000, 20, 30)


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no limit on open files to raise")
@pytest.mark.parametrize("start", START.values(), ids=START.keys())
def test_both_ways_to_start_raise_the_open_files_limit(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, environ: Environ, start: Start
) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    environ({})
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard - 1, hard))  # a little lower: this process needs its files
    try:
        start(monkeypatch)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    ("access_log", "logger"),
    [("on", "{{ cookiecutter.package_name }}.access"), ("off", "gunicorn.access")],
)
async def test_under_gunicorn_the_access_line_is_the_services_unless_access_log_is_off(
    capsys: pytest.CaptureFixture[str],
    root_logger: logging.Logger,
    environ: Environ,
    aiohttp_client: AiohttpClient,
    service_env: dict[str, str],
    access_log: str,
    logger: str,
) -> None:
    environ({**service_env, "ACCESS_LOG": access_log})
    server = await started_as_gunicorn_does(aiohttp_client, create_app_from_env())

    async with aiohttp.ClientSession() as session, session.get(server.make_url("/health"), headers=PROBE) as response:
        assert response.status == 200

    [line] = [line for line in capsys.readouterr().err.splitlines() if PROBE["X-Request-ID"] in line]
    assert f" INFO {logger}: 127.0.0.1 " in line


async def test_timeouts_reach_the_server_and_the_upstream_client_in_seconds_whatever_gunicorn_passes(
    aiohttp_client: AiohttpClient, store: ItemStore
) -> None:
    settings = Settings(upstream_timeout=2.5, keepalive_timeout=75)

    server = await started_as_gunicorn_does(aiohttp_client, create_app(settings, store=store))

    assert server.app[UPSTREAM].timeout.total == 2.5
    assert server.runner is not None
    assert server.runner.server is not None
    assert server.runner.server._kwargs["keepalive_timeout"] == 75  # what each connection's handler is given


async def test_every_json_line_parses_and_carries_its_fields(
    capsys: pytest.CaptureFixture[str],  # before root_logger: open until the stores stop logging, at teardown
    root_logger: logging.Logger,
    client_with: ClientFactory,
    store: ItemStore,
    upstream: TestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every kind of line a request can cause parses as JSON and carries its fields.

    The kinds: an access line, a WARNING, an ERROR with its traceback, a client's malformed request.
    """
    configure_logging(Settings(log_format="json", log_level="DEBUG"))
    client = await client_with(upstream_url=str(upstream.make_url("/error")))

    async def bug(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(store, "get", bug)
    await client.get("/health?x=1", headers={"X-Request-ID": "probe-json"})
    await client.get("/upstream")
    await client.get("/items/1")
    await send_malformed_request(client)

    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert all(datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0) for entry in entries)  # ISO 8601, UTC
    access = [entry for entry in entries if entry["logger"] == "{{ cookiecutter.package_name }}.access"]
    assert all(set(ACCESS_FIELDS) <= entry.keys() for entry in access)
    assert [entry["status"] for entry in access] == [200, 502, 500, 400]
    assert [access[0][field] for field in ("remote", "method", "path", "request_id")] == [
        *("127.0.0.1", "GET", "/health?x=1", "probe-json")
    ]
    assert access[-1]["request_id"] == "-"  # aiohttp's own answer to a malformed request has none
    [fault] = [entry for entry in entries if entry["level"] == "ERROR"]
    assert "RuntimeError: a bug" in fault["exception"]
    [warning] = [entry for entry in entries if entry["level"] == "WARNING"]
    assert warning["message"] == "GET /upstream: upstream answered HTTP 503"
