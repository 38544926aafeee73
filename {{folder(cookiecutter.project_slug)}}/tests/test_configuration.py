"""Configuration, as an operator meets it: settings from the environment, the log format, the gunicorn entry point.

`configure_logging` replaces the root logger's handlers, as a service should at start-up; the `root_logger`
fixture puts pytest's back afterwards, so the tests after these still capture logs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.app import create_app_from_env
from {{ cookiecutter.package_name }}.keys import SETTINGS
from {{ cookiecutter.package_name }}.logs import configure_logging
from {{ cookiecutter.package_name }}.settings import Settings, SettingsError

PROJECT = Path(__file__).parent.parent


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """Function scope: the root logger, with the handlers and level it had before the test put back after it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("host", ["0.0.0.0", "::1", "localhost", "service-1.internal", "10.0.0.7"])
def test_a_host_may_be_an_address_or_a_name(host: str) -> None:
    assert Settings.from_env({"HOST": host}).host == host


def test_every_variable_is_read() -> None:
    env = {"HOST": "0.0.0.0", "PORT": "9001", "UPSTREAM_TIMEOUT": "2.5", "UPSTREAM_MAX_BYTES": "2048"}
    env |= {"BODY_TIMEOUT": "3", "KEEPALIVE_TIMEOUT": "30", "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}

    settings = Settings.from_env({**env, "MAX_BODY_BYTES": "1024"})

    assert (settings.host, settings.port, settings.upstream_timeout, settings.upstream_max_bytes) == (
        "0.0.0.0",
        9001,
        2.5,
        2048,
    )
    assert (settings.body_timeout, settings.keepalive_timeout) == (3, 30)
    assert settings.max_body_bytes == 1024
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
{%- if cookiecutter.database != "none" %}


def test_the_database_timeouts_are_read() -> None:
{%- if cookiecutter.database == "postgresql" %}
    settings = Settings.from_env({"DATABASE_TIMEOUT": "0.25", "DATABASE_POOL_TIMEOUT": "1.5"})

    assert (settings.database_timeout, settings.database_pool_timeout) == (0.25, 1.5)
{%- else %}
    assert Settings.from_env({"DATABASE_TIMEOUT": "0.25"}).database_timeout == 0.25
{%- endif %}
{%- endif %}


def test_every_setting_is_in_the_env_example_and_the_readme() -> None:
    variables = {field.name.upper() for field in dataclasses.fields(Settings)}
    example = (PROJECT / ".env.example").read_text(encoding="utf-8").splitlines()
    readme = (PROJECT / "README.md").read_text(encoding="utf-8").splitlines()

    assert variables <= {line.partition("=")[0] for line in example if not line.startswith("#")}
    assert variables <= {name for line in readme if line.startswith("| `") for name in re.findall(r"`(\w+)`", line)}


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
        ({"DATABASE_TIMEOUT": "0"}, "DATABASE_TIMEOUT must be a number from 0.001 to 600, got '0'"),
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
        ({"DATABASE_POOL_TIMEOUT": "-1"}, "DATABASE_POOL_TIMEOUT must be a number from 0.001 to 600, got '-1'"),
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


def test_the_gunicorn_entry_point_reads_the_environment_and_sets_up_logging(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_TIMEOUT", "2.5")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")

    app = create_app_from_env()

    assert app[SETTINGS].upstream_timeout == 2.5
    assert root_logger.level == logging.WARNING


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
